package codec

import (
	"errors"
	"strconv"
)

// ReasonCode is an MQTT 5 reason code (§2.4). The same byte values are used
// for the 3.x CONNACK return codes through ConnackV3.
type ReasonCode byte

// MQTT 5 reason codes, §2.4 table 2-6.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1 / 3.1.1 CONNACK return codes (3.1.1 §3.2.2.3) and the SUBACK
// failure code (3.1.1 §3.9.3).
const (
	ConnAccepted                     byte = 0x00
	ConnRefusedProtocolVersion       byte = 0x01
	ConnRefusedIdentifierRejected    byte = 0x02
	ConnRefusedServerUnavailable     byte = 0x03
	ConnRefusedBadUserNameOrPasswod  byte = 0x04 // misspelt; kept for existing callers
	ConnRefusedBadUserNameOrPassword byte = 0x04
	ConnRefusedNotAuthorized         byte = 0x05
	SubackFailureV3                  byte = 0x80
)

// IsError reports whether c is an error code (≥ 0x80).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// String returns the specification's name of the code.
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	return "reason code 0x" + strconv.FormatUint(uint64(c), 16)
}

var reasonNames = map[ReasonCode]string{
	0x00: "success", 0x01: "granted QoS 1", 0x02: "granted QoS 2", 0x04: "disconnect with will message",
	0x10: "no matching subscribers", 0x11: "no subscription existed", 0x18: "continue authentication", 0x19: "re-authenticate",
	0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error", 0x83: "implementation specific error",
	0x84: "unsupported protocol version", 0x85: "client identifier not valid", 0x86: "bad user name or password",
	0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down",
	0x8C: "bad authentication method", 0x8D: "keep alive timeout", 0x8E: "session taken over", 0x8F: "topic filter invalid",
	0x90: "topic name invalid", 0x91: "packet identifier in use", 0x92: "packet identifier not found",
	0x93: "receive maximum exceeded", 0x94: "topic alias invalid", 0x95: "packet too large", 0x96: "message rate too high",
	0x97: "quota exceeded", 0x98: "administrative action", 0x99: "payload format invalid", 0x9A: "retain not supported",
	0x9B: "QoS not supported", 0x9C: "use another server", 0x9D: "server moved", 0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded", 0xA0: "maximum connect time", 0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// ReasonError is a decode or validation failure. It is both a Go error and
// the reason code to put on the wire.
type ReasonError struct {
	Code   ReasonCode // the MQTT 5 reason code the spec names for this failure
	Reason string     // short human text, for logs and v5 Reason String
	SpecID string     // normative statement enforced, e.g. "MQTT-3.3.1-4"; may be empty
}

func (e *ReasonError) Error() string {
	s := "codec: " + e.Reason + " (" + e.Code.String() + ")"
	if e.SpecID != "" {
		s += " [" + e.SpecID + "]"
	}
	return s
}

// ConnackV3 maps the error to a 3.1/3.1.1 CONNACK return code, and reports
// false when 3.x has no code for it (the connection is closed without a
// CONNACK, as 3.1.1 §3.2.2.3 and MQTT-3.1.4-1 require for malformed CONNECTs).
func (e *ReasonError) ConnackV3() (byte, bool) {
	switch e.Code {
	case UnsupportedProtocolVersion:
		return ConnRefusedProtocolVersion, true
	case ClientIdentifierNotValid:
		return ConnRefusedIdentifierRejected, true
	case ServerUnavailable, ServerBusy, ServerShuttingDown, QuotaExceeded:
		// A quota (--max-sessions) is the server's state, not the
		// client's parameters: try later.
		return ConnRefusedServerUnavailable, true
	case BadUserNameOrPassword:
		return ConnRefusedBadUserNameOrPasswod, true
	case NotAuthorized, Banned:
		return ConnRefusedNotAuthorized, true
	}
	return 0, false
}

// ErrIncomplete is returned by Frame when the buffered bytes do not yet hold
// a complete fixed header or packet.
var ErrIncomplete = errors.New("codec: incomplete packet")

// AsReasonError returns the *ReasonError in err's chain, or nil.
func AsReasonError(err error) *ReasonError {
	var re *ReasonError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

func malformed(reason, spec string) *ReasonError {
	return &ReasonError{Code: MalformedPacket, Reason: reason, SpecID: spec}
}

func protocolErr(reason, spec string) *ReasonError {
	return &ReasonError{Code: ProtocolError, Reason: reason, SpecID: spec}
}
