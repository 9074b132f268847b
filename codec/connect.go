package codec

import (
	"bytes"
	"unicode/utf8"
)

var (
	nameMQTT   = []byte("MQTT")
	nameMQIsdp = []byte("MQIsdp")
)

// CONNECT errors. The Will statements are numbered differently in 3.1.1 and 5.
var (
	errConnectName      = &ReasonError{Code: UnsupportedProtocolVersion, Reason: "unknown protocol name", SpecID: "MQTT-3.1.2-1"}
	errConnectLevel     = &ReasonError{Code: UnsupportedProtocolVersion, Reason: "unsupported protocol level for this protocol name", SpecID: "MQTT-3.1.2-2"}
	errConnectReserved  = malformed("CONNECT reserved flag set", "MQTT-3.1.2-3")
	errWillQoSNoWillV5  = malformed("will QoS set without will flag", "MQTT-3.1.2-11")
	errWillQoS3V5       = malformed("will QoS 3", "MQTT-3.1.2-12")
	errWillRetNoWillV5  = malformed("will retain set without will flag", "MQTT-3.1.2-13")
	errWillQoSNoWillV3  = malformed("will QoS set without will flag", "MQTT-3.1.2-13")
	errWillQoS3V3       = malformed("will QoS 3", "MQTT-3.1.2-14")
	errWillRetNoWillV3  = malformed("will retain set without will flag", "MQTT-3.1.2-15")
	errPasswordNoUserV3 = protocolErr("password flag set without user name flag", "MQTT-3.1.2-22")
	errClientIDEmptyV3  = &ReasonError{Code: ClientIdentifierNotValid, Reason: "empty client identifier with clean session 0", SpecID: "MQTT-3.1.3-8"}
	errClientIDEmptyV31 = &ReasonError{Code: ClientIdentifierNotValid, Reason: "empty client identifier in MQTT 3.1"}
	errWillTopic        = &ReasonError{Code: TopicNameInvalid, Reason: "will topic is not a valid topic name"}
)

// Connect flag bits (§3.1.2.3).
const (
	flagReserved   = 0x01
	flagCleanStart = 0x02
	flagWill       = 0x04
	flagWillRetain = 0x20
	flagPassword   = 0x40
	flagUsername   = 0x80
)

// Decode decodes a CONNECT body into p; the protocol version comes from the
// packet. Slices alias body. Safe for concurrent use on distinct p.
//
// It checks the protocol name and level pair ("MQIsdp" with 3, "MQTT" with 4
// or 5): an unknown name [MQTT-3.1.2-1] or a level the name does not go with
// [MQTT-3.1.2-2] returns UnsupportedProtocolVersion, with p.ProtocolName and
// p.Version already set so the caller can choose how to answer. It then
// checks the reserved flag [MQTT-3.1.2-3], the Will flag rules (v5
// [MQTT-3.1.2-11/-12/-13], 3.1.1 [MQTT-3.1.2-13/-14/-15]), a password
// without a user name in 3.x [MQTT-3.1.2-22] (allowed in v5), UTF-8 strings,
// the v5 CONNECT and Will properties, and an empty client identifier with
// clean session 0 in 3.1.1 [MQTT-3.1.3-8] or at all in 3.1
// (ClientIdentifierNotValid). Client identifier length is not limited.
// Last, with v5 Will Payload Format Indicator 1, a will payload that is not
// UTF-8 returns PayloadFormatInvalid with p fully decoded.
func (p *Connect) Decode(h FixedHeader, body []byte) error {
	// Field by field: copying the whole struct costs more than the decode.
	p.Props.Reset()
	p.WillProps.Reset()
	p.ProtocolName, p.Version, p.CleanStart, p.KeepAlive, p.ClientID = nil, 0, false, 0, nil
	p.WillFlag, p.WillQoS, p.WillRetain, p.WillTopic, p.WillPayload = false, 0, false, nil, nil
	p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = false, nil, false, nil
	if err := checkHeader(h, body, CONNECT, 0); err != nil {
		return err
	}
	name, b, err := readBinary(body)
	if err != nil {
		return err
	}
	level, b, err := readByte(b)
	if err != nil {
		return err
	}
	p.ProtocolName, p.Version = name, Version(level)
	switch {
	case bytes.Equal(name, nameMQTT):
		if level != byte(V311) && level != byte(V5) {
			return errConnectLevel // [MQTT-3.1.2-2]
		}
	case bytes.Equal(name, nameMQIsdp):
		if level != byte(V31) {
			return errConnectLevel // [MQTT-3.1.2-2]
		}
	default:
		return errConnectName // [MQTT-3.1.2-1]
	}
	v5 := p.Version == V5

	flags, b, err := readByte(b)
	if err != nil {
		return err
	}
	if flags&flagReserved != 0 {
		return errConnectReserved // [MQTT-3.1.2-3]
	}
	p.CleanStart = flags&flagCleanStart != 0
	p.WillFlag = flags&flagWill != 0
	p.WillQoS = flags >> 3 & 3
	p.WillRetain = flags&flagWillRetain != 0
	p.PasswordFlag = flags&flagPassword != 0
	p.UsernameFlag = flags&flagUsername != 0
	switch {
	case !p.WillFlag && p.WillQoS != 0:
		return pick(v5, errWillQoSNoWillV5, errWillQoSNoWillV3) // v5 [MQTT-3.1.2-11], 3.1.1 [MQTT-3.1.2-13]
	case p.WillQoS == 3:
		return pick(v5, errWillQoS3V5, errWillQoS3V3) // v5 [MQTT-3.1.2-12], 3.1.1 [MQTT-3.1.2-14]
	case !p.WillFlag && p.WillRetain:
		return pick(v5, errWillRetNoWillV5, errWillRetNoWillV3) // v5 [MQTT-3.1.2-13], 3.1.1 [MQTT-3.1.2-15]
	case !v5 && p.PasswordFlag && !p.UsernameFlag:
		return errPasswordNoUserV3 // 3.1.1 [MQTT-3.1.2-22]
	}

	if p.KeepAlive, b, err = readUint16(b); err != nil {
		return err
	}
	if v5 {
		if b, err = p.Props.decode(b, propsConnect, repeatUser); err != nil {
			return err
		}
	}
	if p.ClientID, b, err = readString(b); err != nil { // [MQTT-3.1.3-4]
		return err
	}
	if p.WillFlag {
		if v5 {
			if b, err = p.WillProps.decode(b, propsWill, repeatUser); err != nil {
				return err
			}
		}
		if p.WillTopic, b, err = readString(b); err != nil {
			return err
		}
		if p.WillPayload, b, err = readBinary(b); err != nil {
			return err
		}
		if ValidateTopicName(p.WillTopic) != nil {
			return errWillTopic
		}
	}
	if p.UsernameFlag {
		if p.Username, b, err = readString(b); err != nil {
			return err
		}
	}
	if p.PasswordFlag {
		if p.Password, b, err = readBinary(b); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return errTrailing
	}
	if len(p.ClientID) == 0 {
		switch {
		case p.Version == V31:
			return errClientIDEmptyV31
		case p.Version == V311 && !p.CleanStart:
			return errClientIDEmptyV3 // 3.1.1 [MQTT-3.1.3-8]
		}
	}
	if v5 && p.WillProps.PayloadFormat == 1 && !utf8.Valid(p.WillPayload) {
		return errPayloadFormat // §3.1.3.2.3
	}
	return nil
}

// pick returns a if v5, else b.
func pick(v5 bool, a, b error) error {
	if v5 {
		return a
	}
	return b
}

// protocolName is the name written for p: p.ProtocolName if set, else the
// one that goes with p.Version.
func (p *Connect) protocolName() []byte {
	switch {
	case len(p.ProtocolName) != 0:
		return p.ProtocolName
	case p.Version == V31:
		return nameMQIsdp
	}
	return nameMQTT
}

// Append appends p as a CONNECT packet in protocol version p.Version, with
// p.ProtocolName (or the name that goes with the version when it is empty).
// The Will, user name and password fields are written when their flag is
// set; properties only for v5.
func (p *Connect) Append(dst []byte) []byte {
	v5 := p.Version == V5
	name := p.protocolName()
	n := 2 + len(name) + 1 + 1 + 2 + 2 + len(p.ClientID)
	var propsLen, willPropsLen int
	if v5 {
		propsLen = p.Props.Len()
		n += varintLen(propsLen) + propsLen
	}
	flags := byte(0)
	if p.CleanStart {
		flags |= flagCleanStart
	}
	if p.WillFlag {
		flags |= flagWill | (p.WillQoS&3)<<3
		if p.WillRetain {
			flags |= flagWillRetain
		}
		n += 2 + len(p.WillTopic) + 2 + len(p.WillPayload)
		if v5 {
			willPropsLen = p.WillProps.Len()
			n += varintLen(willPropsLen) + willPropsLen
		}
	}
	if p.UsernameFlag {
		flags |= flagUsername
		n += 2 + len(p.Username)
	}
	if p.PasswordFlag {
		flags |= flagPassword
		n += 2 + len(p.Password)
	}

	dst = appendFixedHeader(dst, CONNECT, 0, n)
	dst = appendBinary(dst, name)
	dst = append(dst, byte(p.Version), flags)
	dst = appendUint16(dst, p.KeepAlive)
	if v5 {
		dst = p.Props.appendBlock(dst, propsLen)
	}
	dst = appendBinary(dst, p.ClientID)
	if p.WillFlag {
		if v5 {
			dst = p.WillProps.appendBlock(dst, willPropsLen)
		}
		dst = appendBinary(dst, p.WillTopic)
		dst = appendBinary(dst, p.WillPayload)
	}
	if p.UsernameFlag {
		dst = appendBinary(dst, p.Username)
	}
	if p.PasswordFlag {
		dst = appendBinary(dst, p.Password)
	}
	return dst
}

// CONNACK errors.
var (
	errConnackFlags     = malformed("CONNACK acknowledge flags reserved bits set", "MQTT-3.2.2-1")
	errConnackPresentV5 = protocolErr("session present with a non-zero reason code", "MQTT-3.2.2-6")
	errConnackPresentV3 = protocolErr("session present with a non-zero return code", "MQTT-3.2.2-4")
)

// validConnackV5 reports whether c is a CONNACK reason code (§3.2.2.2).
func validConnackV5(c byte) bool {
	switch ReasonCode(c) {
	case Success, UnspecifiedError, MalformedPacket, ProtocolError, ImplementationSpecificError,
		UnsupportedProtocolVersion, ClientIdentifierNotValid, BadUserNameOrPassword, NotAuthorized,
		ServerUnavailable, ServerBusy, Banned, BadAuthenticationMethod, TopicNameInvalid,
		PacketTooLarge, QuotaExceeded, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported,
		UseAnotherServer, ServerMoved, ConnectionRateExceeded:
		return true
	}
	return false
}

// Decode decodes a CONNACK body for version v. It checks the reserved
// acknowledge flags, the code (v5 CONNACK reason codes; 3.x return codes
// 0..5) and that Session Present is 0 with a failure code. A v5 CONNACK
// without a property length is accepted as having no properties.
func (p *Connack) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	p.SessionPresent, p.Code = false, 0
	if err := checkHeader(h, body, CONNACK, 0); err != nil {
		return err
	}
	if len(body) < 2 {
		return errShort
	}
	if body[0]&^1 != 0 {
		return errConnackFlags
	}
	p.SessionPresent, p.Code = body[0] == 1, body[1]
	b := body[2:]
	if v == V5 {
		if !validConnackV5(p.Code) {
			return errReasonCode
		}
		if len(b) > 0 {
			var err error
			if b, err = p.Props.decode(b, propsConnack, repeatUser); err != nil {
				return err
			}
		}
	} else if p.Code > ConnRefusedNotAuthorized {
		return errReasonCode
	}
	if len(b) != 0 {
		return errTrailing
	}
	if p.SessionPresent && p.Code != 0 {
		return pick(v == V5, errConnackPresentV5, errConnackPresentV3)
	}
	return nil
}

// Append appends p as a CONNACK packet for version v (properties: v5 only).
func (p *Connack) Append(dst []byte, v Version) []byte {
	n, propsLen := 2, 0
	if v == V5 {
		propsLen = p.Props.Len()
		n += varintLen(propsLen) + propsLen
	}
	dst = appendFixedHeader(dst, CONNACK, 0, n)
	sp := byte(0)
	if p.SessionPresent {
		sp = 1
	}
	dst = append(dst, sp, p.Code)
	if v == V5 {
		dst = p.Props.appendBlock(dst, propsLen)
	}
	return dst
}
