package codec

// validAuthCode reports whether c is an AUTH reason code (§3.15.2.1).
func validAuthCode(c ReasonCode) bool {
	return c == Success || c == ContinueAuthentication || c == ReAuthenticate
}

// Decode decodes an AUTH body for version v. AUTH exists only in MQTT 5; in
// 3.x packet type 15 is reserved and Malformed. Flags must be 0. The reason
// code and properties are optional (§3.15.2.1: remaining length 0 means
// Success and no properties); the code must be 0x00, 0x18 or 0x19. Whether
// the Authentication Method matches the CONNECT's is for the broker to check.
func (p *Auth) Decode(h FixedHeader, body []byte, v Version) error {
	p.Props.Reset()
	p.Code = 0
	if v != V5 {
		return errAuthV3
	}
	if err := checkHeader(h, body, AUTH, 0); err != nil {
		return err
	}
	return decodeCodeProps(body, &p.Code, &p.Props, validAuthCode, propsAuth)
}

// Append appends p as an AUTH packet (MQTT 5 only): remaining length 0 when
// the code is Success and there are no properties.
func (p *Auth) Append(dst []byte) []byte {
	return appendCodeProps(dst, AUTH, p.Code, &p.Props)
}
