package reactor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol (HAProxy's proxy-protocol.txt, v1 text and v2 binary).
// A load balancer that terminates nothing but TCP sends one header at the
// start of the connection naming the client's real address; on a listener
// with ?proxy=true that address is what RemoteAddr, and so logs, bans,
// ACLs and limits, see. ?proxy=v1 or ?proxy=v2 pins the version, as some
// balancers' documentation requires: a header of the other version is
// refused (and counted apart, reason proxy_version) however valid it is.
//
// This file only finds where the header ends — so a header split over
// several reads stays buffered, and nothing is read past it — and leaves
// the parsing and validation to github.com/pires/go-proxyproto.

const (
	proxyV1MaxLen = 107                 // "PROXY UNKNOWN ffff:…:ffff ffff:…:ffff 65535 65535\r\n"
	proxyV2Fixed  = 16                  // signature, version/command, family, length
	proxyMaxLen   = proxyV2Fixed + 1024 // longest v2 header accepted (addresses + TLVs); bigger is refused
)

var (
	errProxyIncomplete = errors.New("incomplete PROXY header")
	errNoProxyHeader   = errors.New("connection does not start with a PROXY protocol header")
	errProxyVersion    = errors.New("PROXY protocol header of a version the listener does not accept")
)

// proxyMode is a listener's ?proxy= option: which PROXY protocol header,
// if any, must precede everything else on its connections.
type proxyMode uint8

const (
	proxyOff proxyMode = iota // no header (?proxy=false, or no option)
	proxyAny                  // v1 or v2 (?proxy=true)
	proxyV1                   // the text header only (?proxy=v1)
	proxyV2                   // the binary header only (?proxy=v2)
)

// parseProxyMode parses the value of ?proxy=: a boolean, v1 or v2.
func parseProxyMode(v string) (proxyMode, error) {
	switch strings.ToLower(v) {
	case "v1", "1.0":
		return proxyV1, nil
	case "v2", "2.0":
		return proxyV2, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return proxyOff, fmt.Errorf("proxy=%q: want true, false, v1 or v2", v)
	}
	if b {
		return proxyAny, nil
	}
	return proxyOff, nil
}

// accepts reports whether a header of version v (1 or 2) is welcome.
func (m proxyMode) accepts(v byte) bool {
	switch m {
	case proxyAny:
		return v == 1 || v == 2
	case proxyV1:
		return v == 1
	case proxyV2:
		return v == 2
	}
	return false
}

func (m proxyMode) String() string {
	return [...]string{"off", "v1 or v2", "v1", "v2"}[m]
}

// proxyHeaderLen returns the length of the PROXY header at the start of b,
// errProxyIncomplete if more bytes are needed to tell, errProxyVersion
// (wrapped) as soon as the signature is one of a version m refuses, or
// another error if b cannot start with a header. It never looks further
// than proxyMaxLen bytes.
func proxyHeaderLen(b []byte, m proxyMode) (int, error) {
	sigV1, sigV2 := proxyproto.SIGV1, proxyproto.SIGV2
	if len(b) == 0 {
		return 0, errProxyIncomplete
	}
	switch b[0] {
	case sigV1[0]:
		if n := min(len(b), len(sigV1)); !bytes.Equal(b[:n], sigV1[:n]) {
			return 0, errNoProxyHeader
		}
		if !m.accepts(1) {
			return 0, fmt.Errorf("%w: v1 on a listener with proxy=%s", errProxyVersion, m)
		}
		i := bytes.Index(b[:min(len(b), proxyV1MaxLen)], []byte("\r\n"))
		if i < 0 {
			if len(b) >= proxyV1MaxLen {
				return 0, fmt.Errorf("PROXY v1 header longer than %d bytes", proxyV1MaxLen)
			}
			return 0, errProxyIncomplete
		}
		return i + 2, nil
	case sigV2[0]:
		if n := min(len(b), len(sigV2)); !bytes.Equal(b[:n], sigV2[:n]) {
			return 0, errNoProxyHeader
		}
		if len(b) >= len(sigV2) && !m.accepts(2) {
			return 0, fmt.Errorf("%w: v2 on a listener with proxy=%s", errProxyVersion, m)
		}
		if len(b) < proxyV2Fixed {
			return 0, errProxyIncomplete
		}
		n := proxyV2Fixed + int(binary.BigEndian.Uint16(b[14:16]))
		if n > proxyMaxLen {
			return 0, fmt.Errorf("PROXY v2 header of %d bytes is longer than the %d accepted", n, proxyMaxLen)
		}
		if len(b) < n {
			return 0, errProxyIncomplete
		}
		return n, nil
	}
	return 0, errNoProxyHeader
}

// parseProxyHeader parses the PROXY header at the start of b, of a version
// m accepts (errProxyVersion, wrapped, for the other). It returns
// the header's length and the client's address (nil for a v2 LOCAL or a
// v1 UNKNOWN header: a health check by the balancer itself, which keeps
// the socket's address), errProxyIncomplete while the header is not
// complete, or another error if b does not start with a valid header.
func parseProxyHeader(b []byte, m proxyMode) (int, net.Addr, error) {
	n, err := proxyHeaderLen(b, m)
	if err != nil {
		return 0, nil, err
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(b[:n]), proxyMaxLen))
	if err != nil {
		return 0, nil, err
	}
	if h.Command.IsLocal() || h.TransportProtocol == proxyproto.UNSPEC {
		return n, nil, nil
	}
	return n, h.SourceAddr, nil
}
