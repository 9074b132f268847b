package reactor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol (HAProxy's proxy-protocol.txt, v1 text and v2 binary).
// A load balancer that terminates nothing but TCP sends one header at the
// start of the connection naming the client's real address; on a listener
// with ?proxy=true that address is what RemoteAddr, and so logs, bans,
// ACLs and limits, see.
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
)

// proxyHeaderLen returns the length of the PROXY header at the start of b,
// errProxyIncomplete if more bytes are needed to tell, or an error if b
// cannot start with one. It never looks further than proxyMaxLen bytes.
func proxyHeaderLen(b []byte) (int, error) {
	sigV1, sigV2 := proxyproto.SIGV1, proxyproto.SIGV2
	if len(b) == 0 {
		return 0, errProxyIncomplete
	}
	switch b[0] {
	case sigV1[0]:
		if n := min(len(b), len(sigV1)); !bytes.Equal(b[:n], sigV1[:n]) {
			return 0, errNoProxyHeader
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

// parseProxyHeader parses the PROXY header at the start of b. It returns
// the header's length and the client's address (nil for a v2 LOCAL or a
// v1 UNKNOWN header: a health check by the balancer itself, which keeps
// the socket's address), errProxyIncomplete while the header is not
// complete, or another error if b does not start with a valid header.
func parseProxyHeader(b []byte) (int, net.Addr, error) {
	n, err := proxyHeaderLen(b)
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
