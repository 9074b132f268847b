package codec

// Package-level *ReasonError values for the common failures, so that the
// error path of the hot decoders does not allocate either. They are shared:
// callers must not modify them.
var (
	errShort         = malformed("packet shorter than its fields", "")
	errTrailing      = malformed("bytes left after the last field", "")
	errBodyLen       = malformed("body length differs from the remaining length", "")
	errWrongType     = malformed("packet type does not match the decoder", "")
	errTypeZero      = malformed("packet type 0 is reserved", "MQTT-2.1.3-1")
	errFlags         = malformed("reserved fixed header flags set", "MQTT-2.1.3-1")
	errFlagsPubrel   = malformed("PUBREL flags are not 0010", "MQTT-3.6.1-1")
	errFlagsSub      = malformed("SUBSCRIBE flags are not 0010", "MQTT-3.8.1-1")
	errFlagsUnsub    = malformed("UNSUBSCRIBE flags are not 0010", "MQTT-3.10.1-1")
	errVarintLong    = malformed("variable byte integer longer than 4 bytes", "")
	errVarintNonMin  = malformed("variable byte integer not minimally encoded", "MQTT-1.5.5-1")
	errPacketTooBig  = &ReasonError{Code: PacketTooLarge, Reason: "packet exceeds the maximum packet size"}
	errUTF8          = malformed("ill-formed UTF-8 string", "MQTT-1.5.4-1")
	errUTF8Null      = malformed("UTF-8 string contains U+0000", "MQTT-1.5.4-2")
	errPayloadFormat = &ReasonError{Code: PayloadFormatInvalid, Reason: "payload is not valid UTF-8 but the payload format indicator says it is"}
	errAuthV3        = malformed("AUTH is reserved in MQTT 3.x", "")

	// Properties.
	errPropShort     = malformed("property block longer than the packet", "")
	errPropNotAllow  = malformed("property not allowed in this packet", "")
	errPropDup       = protocolErr("property that may appear once appears twice", "")
	errPropBool      = protocolErr("property value must be 0 or 1", "")
	errPropZero      = protocolErr("property value must not be 0", "")
	errSubIDZero     = protocolErr("subscription identifier 0", "")
	errTopicAlias0   = &ReasonError{Code: TopicAliasInvalid, Reason: "topic alias 0", SpecID: "MQTT-3.3.2-8"}
	errAuthDataNoMet = protocolErr("authentication data without authentication method", "")
	errRespTopicWild = protocolErr("response topic contains a wildcard", "MQTT-3.3.2-14")
	errReasonCode    = protocolErr("reason code not valid for this packet", "")

	// Topics.
	errTopicEmpty      = &ReasonError{Code: TopicNameInvalid, Reason: "empty topic name", SpecID: "MQTT-4.7.3-1"}
	errTopicWildcard   = &ReasonError{Code: TopicNameInvalid, Reason: "wildcard in topic name", SpecID: "MQTT-3.3.2-2"}
	errTopicTooLong    = &ReasonError{Code: TopicNameInvalid, Reason: "topic longer than 65535 bytes", SpecID: "MQTT-4.7.3-3"}
	errTopicEmptyNoAli = protocolErr("empty topic name without topic alias", "")
	errFilterEmpty     = &ReasonError{Code: TopicFilterInvalid, Reason: "empty topic filter", SpecID: "MQTT-4.7.3-1"}
	errFilterTooLong   = &ReasonError{Code: TopicFilterInvalid, Reason: "topic filter longer than 65535 bytes", SpecID: "MQTT-4.7.3-3"}
	errFilterHash      = &ReasonError{Code: TopicFilterInvalid, Reason: "'#' not alone in the last level", SpecID: "MQTT-4.7.1-1"}
	errFilterPlus      = &ReasonError{Code: TopicFilterInvalid, Reason: "'+' not alone in its level", SpecID: "MQTT-4.7.1-2"}
	errShareName       = &ReasonError{Code: TopicFilterInvalid, Reason: "empty share name", SpecID: "MQTT-4.8.2-1"}
	errShareSyntax     = &ReasonError{Code: TopicFilterInvalid, Reason: "share name contains '/', '+' or '#', or is not followed by '/' and a filter", SpecID: "MQTT-4.8.2-2"}

	// Packet identifiers: the statement is numbered differently in 3.1.1 and 5.
	errPacketID0V5 = protocolErr("packet identifier 0", "MQTT-2.2.1-3")
	errPacketID0V3 = protocolErr("packet identifier 0", "MQTT-2.3.1-1")
)

// packetIDZero returns the packet-identifier-0 error numbered for v.
func packetIDZero(v Version) error {
	if v == V5 {
		return errPacketID0V5
	}
	return errPacketID0V3
}
