package reactor

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listener is one parsed --listen address.
type listener struct {
	raw    string
	scheme string    // tcp, tcp4, tcp6 (gnet); tls, ws, wss (goroutine transport)
	addr   string    // host:port
	path   string    // ws/wss: HTTP path of the WebSocket endpoint
	proxy  proxyMode // whether (and which) PROXY protocol header precedes everything else
}

// onLoop reports whether the listener is served by the gnet event loops
// (plain TCP); the others run a goroutine per connection (goconn.go).
func (ln listener) onLoop() bool {
	return ln.scheme == "tcp" || ln.scheme == "tcp4" || ln.scheme == "tcp6"
}

func (ln listener) tls() bool { return ln.scheme == "tls" || ln.scheme == "wss" }

// gnetAddr is the address handed to gnet.
func (ln listener) gnetAddr() string { return ln.scheme + "://" + ln.addr }

// DefaultWSPath is the HTTP path of a ws:// or wss:// listener given
// without one.
const DefaultWSPath = "/mqtt"

// parseListener parses scheme://host:port[/path][?proxy=true|v1|v2].
func parseListener(s string) (listener, error) {
	u, err := url.Parse(s)
	if err != nil {
		return listener{}, fmt.Errorf("reactor: bad listener %q: %v", s, err)
	}
	ln := listener{raw: s, scheme: u.Scheme, addr: u.Host}
	switch u.Scheme {
	case "tcp", "tcp4", "tcp6", "tls":
		if u.Path != "" {
			return listener{}, fmt.Errorf("reactor: listener %q: only ws:// and wss:// take a path", s)
		}
	case "ws", "wss":
		ln.path = u.Path
		if ln.path == "" {
			ln.path = DefaultWSPath
		}
	default:
		return listener{}, fmt.Errorf("reactor: unsupported listener %q (want tcp://, tls://, ws:// or wss:// host:port)", s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return listener{}, fmt.Errorf("reactor: listener %q: want host:port", s)
	}
	for k, v := range u.Query() {
		switch k {
		case "proxy":
			m, err := parseProxyMode(strings.Join(v, ""))
			if err != nil {
				return listener{}, fmt.Errorf("reactor: listener %q: %v", s, err)
			}
			ln.proxy = m
		default:
			return listener{}, fmt.Errorf("reactor: listener %q: unknown option %q (known: proxy)", s, k)
		}
	}
	return ln, nil
}

// matches reports whether a connection accepted at local came through this
// gnet listener: same port, and same IP unless the listener is on the
// unspecified address.
func (ln listener) matches(local net.Addr) bool {
	ta, ok := local.(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, _ := net.SplitHostPort(ln.addr)
	if port != strconv.Itoa(ta.Port) {
		return false
	}
	ip := net.ParseIP(host)
	if host == "" || ip == nil || ip.IsUnspecified() {
		return true
	}
	return ip.Equal(ta.IP)
}

// probeBind binds a TCP socket to addr as net.Listen would (SO_REUSEADDR;
// dual stack for tcp on a wildcard address) but without SO_REUSEPORT and
// without listening, and closes it: it fails if another socket listens
// there, and no client can connect to it meanwhile. It returns addr
// resolved.
func probeBind(network, addr string) (*net.TCPAddr, error) {
	fd, ta, err := reserveBind(network, addr)
	if err != nil {
		return nil, err
	}
	_ = unix.Close(fd)
	return ta, nil
}

// port0 reports whether the listener asks the kernel for a port (:0).
func (ln listener) port0() bool {
	_, port, _ := net.SplitHostPort(ln.addr)
	return port == "0"
}

// reserveBind binds a TCP socket like probeBind and leaves it open: it
// returns the socket and its address, the port the kernel chose when addr
// has port 0. While it stays bound the kernel gives that port to no other
// port-0 bind, and gnet's listeners (SO_REUSEADDR) can bind it, since it
// does not listen: Start holds one until gnet has bound every loop's
// listener, which with SO_REUSEPORT binds the address once per loop (port
// 0 would give each loop a port of its own).
func reserveBind(network, addr string) (int, *net.TCPAddr, error) {
	ta, err := net.ResolveTCPAddr(network, addr)
	if err != nil {
		return -1, nil, err
	}
	v4 := func() (int, unix.Sockaddr) {
		a := &unix.SockaddrInet4{Port: ta.Port}
		if ip4 := ta.IP.To4(); ip4 != nil {
			copy(a.Addr[:], ip4)
		}
		return unix.AF_INET, a
	}
	v6 := func() (int, unix.Sockaddr) {
		a := &unix.SockaddrInet6{Port: ta.Port}
		if ta.IP != nil && !ta.IP.IsUnspecified() {
			copy(a.Addr[:], ta.IP.To16())
		}
		return unix.AF_INET6, a
	}
	dual := network == "tcp" && (ta.IP == nil || ta.IP.IsUnspecified())
	var family int
	var sa unix.Sockaddr
	switch {
	case network == "tcp4", network == "tcp" && !dual && ta.IP.To4() != nil:
		family, sa = v4()
	default:
		family, sa = v6()
	}
	// SOCK_CLOEXEC is Linux's; CloseOnExec works everywhere (the window
	// between the two calls matters only to a process that forks, which
	// this one does not while listening).
	fd, err := unix.Socket(family, unix.SOCK_STREAM, unix.IPPROTO_TCP)
	if err != nil && dual {
		family, sa = v4() // no IPv6
		fd, err = unix.Socket(family, unix.SOCK_STREAM, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, nil, os.NewSyscallError("socket", err)
	}
	unix.CloseOnExec(fd)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if family == unix.AF_INET6 && dual {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, nil, &net.OpError{Op: "listen", Net: network, Addr: ta, Err: os.NewSyscallError("bind", err)}
	}
	bound := *ta
	got, err := unix.Getsockname(fd)
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		bound.Port = a.Port
	case *unix.SockaddrInet6:
		bound.Port = a.Port
	}
	if err != nil || bound.Port == 0 {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("cannot read the port bound for %s: %v", addr, err)
	}
	return fd, &bound, nil
}
