package codec

// validDisconnectCode reports whether c is a DISCONNECT reason code (§3.14.2.1).
func validDisconnectCode(c ReasonCode) bool {
	switch c {
	case NormalDisconnection, DisconnectWithWill, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, NotAuthorized, ServerBusy, ServerShuttingDown, KeepAliveTimeout,
		SessionTakenOver, TopicFilterInvalid, TopicNameInvalid, ReceiveMaximumExceeded,
		TopicAliasInvalid, PacketTooLarge, MessageRateTooHigh, QuotaExceeded, AdministrativeAction,
		PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
		SharedSubscriptionsNotSupported, ConnectionRateExceeded, MaximumConnectTime,
		SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported:
		return true
	}
	return false
}

// Decode decodes a DISCONNECT body for version v. Flags must be 0. In 3.x the
// remaining length is 0. In v5 the reason code and properties are optional
// (§3.14.2.1: remaining length 0 means Normal disconnection, 1 a code and
// no properties); the code must be a DISCONNECT reason code. Whether a
// Session Expiry Interval is allowed here (§3.14.2.2.2) depends on the
// CONNECT, so the broker checks it.
func (p *Disconnect) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	p.Code = 0
	if err := checkHeader(h, body, DISCONNECT, 0); err != nil {
		return err
	}
	if v != V5 {
		if len(body) != 0 {
			return errTrailing
		}
		return nil
	}
	return decodeCodeProps(body, &p.Code, &p.Props, validDisconnectCode, propsDisconnect)
}

// decodeCodeProps decodes the optional reason code and properties that make
// up the whole body of a v5 DISCONNECT or AUTH.
func decodeCodeProps(b []byte, code *ReasonCode, props *Properties, valid func(ReasonCode) bool, allowed uint64) error {
	if len(b) == 0 {
		return nil
	}
	*code = ReasonCode(b[0])
	if !valid(*code) {
		return errReasonCode
	}
	if b = b[1:]; len(b) == 0 {
		return nil
	}
	b, err := props.decode(b, allowed, repeatUser)
	if err != nil {
		return err
	}
	if len(b) != 0 {
		return errTrailing
	}
	return nil
}

// appendCodeProps appends a v5 DISCONNECT or AUTH: remaining length 0 when
// the code is 0 and there are no properties, else the code and the
// property block.
func appendCodeProps(dst []byte, t Type, code ReasonCode, props *Properties) []byte {
	propsLen := props.Len()
	if code == 0 && propsLen == 0 {
		return appendFixedHeader(dst, t, 0, 0)
	}
	dst = appendFixedHeader(dst, t, 0, 1+varintLen(propsLen)+propsLen)
	return props.appendBlock(append(dst, byte(code)), propsLen)
}

// Append appends p as a DISCONNECT packet for version v (code and
// properties: v5 only; left out when the code is 0 and there are no
// properties).
func (p *Disconnect) Append(dst []byte, v Version) []byte {
	if v != V5 {
		return appendFixedHeader(dst, DISCONNECT, 0, 0)
	}
	return appendCodeProps(dst, DISCONNECT, p.Code, &p.Props)
}
