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
// # Framing
//
// Frame looks at the bytes buffered so far and says whether they start with
// a complete packet, need more bytes, or are refused (a malformed fixed
// header, or a declared size above the caller's maximum, decided before the
// body arrives). Every decoder then takes the fixed header and exactly the
// body: Decode(h, body, version). A Variable Byte Integer that is not
// minimally encoded is rejected as Malformed [MQTT-1.5.5-1]: the spec binds
// senders to it and no real client breaks it.
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
// length read from the input. Common failures are shared package-level
// values, so the error path does not allocate either.
//
// SpecIDs follow the MQTT 5.0 OASIS Standard numbering. Where 3.1.1 numbers
// the same rule differently and the packet is 3.x, the 3.1.1 number is used
// (the Will flag rules, packet identifier 0, SUBSCRIBE with no filter or a
// bad requested-QoS byte, CONNACK Session Present).
//
// Two failures leave the packet fully decoded, because the broker may answer
// them without closing the connection: PayloadFormatInvalid (v5 PUBLISH or
// Will with Payload Format Indicator 1 and a payload that is not UTF-8;
// answer with a PUBACK/PUBREC 0x99) and TopicFilterInvalid from SUBSCRIBE
// (every subscription is decoded; answer that filter with 0x8F or close).
//
// Checks that depend on session state are left to the broker: an inbound
// PUBLISH carrying a Subscription Identifier [MQTT-3.3.4-6], topic alias
// ranges, a DISCONNECT Session Expiry when CONNECT had none, the AUTH
// method matching CONNECT's.
//
// # Concurrency
//
// All functions are safe for concurrent use; a packet value must not be
// decoded into or encoded from by two goroutines at once.
package codec
