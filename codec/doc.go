// Package codec turns bytes into MQTT control packets and back, for MQTT 3.1
// (protocol name "MQIsdp", level 3), 3.1.1 (level 4) and 5.0 (level 5).
//
// It has one job: framing, decoding, validating and encoding packets. It does
// no I/O and keeps no state between calls.
//
// # Zero copy
//
// Decoders never copy: every []byte field of a decoded packet (topic, payload,
// client id, username, password, string and binary properties, user
// properties) is a sub-slice of the body handed to Decode. Those slices are
// valid only as long as the caller keeps that input unchanged; a caller that
// needs a field after the input is reused (for example after gnet's Discard)
// must copy it. Slice-valued fields whose element type is not byte (user
// properties, subscription identifiers, subscribe filters, reason codes) are
// appended to the packet's existing slices after truncating them to zero
// length, so a packet value reused across calls decodes without allocating.
//
// # Encoding
//
// Every packet has an Append method that appends its wire form to dst and
// returns the extended slice. AppendPublishHeader encodes everything of a
// PUBLISH except the payload, so a shared payload can be written as a second
// vector without being touched.
//
// # Errors
//
// Every decode or validation failure is a *ReasonError carrying the MQTT 5
// reason code the specification names (0x81 malformed, 0x82 protocol error,
// 0x95 packet too large, …), a short reason and, where there is one, the
// normative statement it enforces. For 3.1/3.1.1 a caller maps it with
// ReasonError.ConnackV3. ErrIncomplete means more bytes are needed. No input
// makes a function of this package panic, and no allocation is sized by a
// length read from the input.
package codec
