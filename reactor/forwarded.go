package reactor

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
)

// X-Forwarded-For and RFC 7239 Forwarded on ws:// and wss:// listeners.
//
// A reverse proxy in front of a WebSocket listener (nginx, HAProxy,
// Traefik, a cloud load balancer) connects from its own address and names
// the client in a header of the upgrade request. The header is honoured
// only when the socket's peer (after a PROXY header, if any) is one of the
// trusted proxies (Options.WSTrustedProxies): anyone else could claim any
// address. The chain of hops is then read from the right, as nginx's
// real_ip_recursive and Traefik do: each proxy appends the address it got
// the request from, so the right-most address that is not a trusted proxy
// is the first one a trusted proxy vouches for. Left of it, the addresses
// were written by the client or by proxies nobody vouches for, and are
// ignored. When every hop is trusted, the left-most is the client.
//
// Forwarded (RFC 7239) is preferred to X-Forwarded-For when a request
// carries both: it is the standard, and a proxy that writes it knows it.
// Several header lines are one list, in order (RFC 7230 §3.2.2). A header
// that cannot be read — a hop that is not an address, such as RFC 7239's
// "unknown" or an obfuscated "_name" — is not guessed at: the peer's own
// address is kept, and the request is counted as malformed.

// forwardResult says what became of a request's forwarding headers.
type forwardResult uint8

const (
	forwardNone      forwardResult = iota // no header: the peer's address
	forwardUsed                           // the client's address from the header
	forwardUntrusted                      // a header from a peer that is not a trusted proxy: ignored
	forwardMalformed                      // a trusted proxy's header that cannot be read: ignored
)

var errForwardedSyntax = errors.New("malformed forwarding header")

// trustedProxies is Options.WSTrustedProxies.
type trustedProxies []netip.Prefix

func (tp trustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient returns the client's address for an upgrade request
// with headers h that came from peer, and what was made of the headers.
// The address is peer unless the result is forwardUsed. Safe for
// concurrent use.
func (tp trustedProxies) forwardedClient(h http.Header, peer netip.AddrPort) (netip.AddrPort, forwardResult) {
	fwd, xff := h.Values("Forwarded"), h.Values("X-Forwarded-For")
	if len(fwd) == 0 && len(xff) == 0 {
		return peer, forwardNone
	}
	if len(tp) == 0 || !tp.contains(peer.Addr()) {
		return peer, forwardUntrusted
	}
	var hops []netip.AddrPort
	var err error
	if len(fwd) > 0 {
		hops, err = parseForwarded(fwd)
	} else {
		hops, err = parseXForwardedFor(xff)
	}
	if err != nil || len(hops) == 0 {
		return peer, forwardMalformed
	}
	for i := len(hops) - 1; i > 0; i-- {
		if !tp.contains(hops[i].Addr()) {
			return hops[i], forwardUsed
		}
	}
	return hops[0], forwardUsed
}

// parseXForwardedFor reads the X-Forwarded-For lines: addresses separated
// by commas, each an IP, optionally with a port (ip:port, [ipv6]:port) as
// some balancers write.
func parseXForwardedFor(lines []string) ([]netip.AddrPort, error) {
	var hops []netip.AddrPort
	for _, l := range lines {
		for _, e := range strings.Split(l, ",") {
			ap, err := parseHop(strings.TrimSpace(e))
			if err != nil {
				return nil, err
			}
			hops = append(hops, ap)
		}
	}
	return hops, nil
}

// parseForwarded reads the for= parameter of every element of the
// Forwarded lines (RFC 7239 §4: elements separated by commas, pairs by
// semicolons, values tokens or quoted strings). An element without for=
// is malformed here: its hop is unknown.
func parseForwarded(lines []string) ([]netip.AddrPort, error) {
	var hops []netip.AddrPort
	for _, l := range lines {
		for _, elem := range splitQuoted(l, ',') {
			found := false
			for _, pair := range splitQuoted(elem, ';') {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok {
					if strings.TrimSpace(pair) == "" {
						continue
					}
					return nil, errForwardedSyntax
				}
				if !strings.EqualFold(k, "for") {
					continue
				}
				if found {
					return nil, errForwardedSyntax // for= twice in one element
				}
				found = true
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
				}
				ap, err := parseHop(v)
				if err != nil {
					return nil, err
				}
				hops = append(hops, ap)
			}
			if !found {
				return nil, errForwardedSyntax
			}
		}
	}
	return hops, nil
}

// parseHop parses one hop: ip, ip:port, [ipv6] or [ipv6]:port. The port
// is 0 when absent (RFC 7239 also allows an obfuscated "_port", taken as
// absent).
func parseHop(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 0), nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, port, ok := s, "", false
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			host, port, ok = s[1:i], s[i+1:], true
		}
	} else if i := strings.LastIndexByte(s, ':'); i > 0 && strings.Count(s, ":") == 1 {
		host, port, ok = s[:i], s[i:], true
	}
	if ok && (port == "" || strings.HasPrefix(port, ":_")) {
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
			return netip.AddrPortFrom(a.Unmap(), 0), nil
		}
	}
	return netip.AddrPort{}, errForwardedSyntax
}

// splitQuoted splits s at sep outside double-quoted strings.
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// hopString formats a client address taken from a header for logs and
// the broker: ip:port, or the bare IP when the header gave no port.
func hopString(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}
