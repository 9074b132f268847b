package broker

import (
	"errors"
	"log/slog"

	"github.com/mcutie/mcutie/codec"
)

// Conn is the transport of one client connection, implemented by the
// reactor. Every method is Loop-only (called on the connection's own event
// loop), except Close, which is safe from anywhere.
type Conn interface {
	// Writev writes the vectors in order; bytes the socket does not take
	// at once are buffered by the transport. The caller may reuse the
	// vectors as soon as it returns.
	Writev(bufs [][]byte) (int, error)
	// OutboundBuffered is the number of bytes written but not yet sent.
	OutboundBuffered() int
	// Close closes the connection after sending what is buffered; the
	// transport then calls Client.Closed on the loop.
	Close() error
	// RemoteAddr names the peer ("host:port"), for logs and bans.
	RemoteAddr() string
	// Wake makes the transport feed the connection's buffered bytes
	// again (Client.Feed) soon, on its loop, even if no new byte arrives:
	// a connection whose asynchronous authentication has finished may
	// already hold the packets that followed its CONNECT. Safe from
	// anywhere.
	Wake() error
}

// ListenerConn is implemented by a Conn that knows the listener that
// accepted it, as configured ("tcp://0.0.0.0:1883"): the connection hooks
// are told it (hooks.Client.Listener).
type ListenerConn interface {
	Listener() string
}

// IdentifiedConn is implemented by a Conn whose transport has already
// established who the peer is (mTLS with the username taken from the client
// certificate's Common Name). When Username reports ok, that name replaces
// the CONNECT's User Name for everything that follows (authentication,
// ACLs, logs): a client cannot claim another identity than its certificate
// proves.
type IdentifiedConn interface {
	Username() (name string, ok bool)
}

// FeedResult tells the transport what to do after Feed.
type FeedResult uint8

const (
	FeedContinue FeedResult = iota // keep the connection
	FeedClose                      // close it (the broker has written what it had to say)
	FeedMigrate                    // move it to loop MigrateTo, carrying the unconsumed bytes
)

type clientState uint8

const (
	stateAwaitConnect clientState = iota
	stateConnected
	stateClosing
	stateMigrating
	stateAuthPending  // waiting for an Authenticator's verdict: nothing is read
	stateAuthContinue // v5 enhanced authentication: waiting for the client's AUTH
)

// Client is one network connection speaking MQTT. All its methods are
// Loop-only.
//
// Its fields are ordered by size so the struct fits a 128-byte allocation
// class: every idle connection pays for it (see docs/benchmarks.md, "Memory per
// connection"); what only some connections need (output buffers, topic
// aliases) hangs behind a pointer allocated on first use.
type Client struct {
	l      *Loop
	conn   Conn
	s      *Session
	output *outBuf // output of the current pass; nil while there is none
	// aliases are the v5 topic aliases, both ways (aliases.go), allocated
	// on first use.
	aliases *topicAliases

	// lastSeen is when the last bytes came; before CONNECT, when the
	// connection opened (the connect timeout counts from there).
	lastSeen int64

	// id is the client identifier, set when the connection claims it
	// (connect.go). The user name is in the session (ACL checks) or, while
	// an Authenticator is involved, in af (nil when not: an idle connection
	// does not pay for it).
	id   string
	auth *authFlow

	// holdUntil is the loop's Apply (commitOps) whose completion the
	// queued output waits for: it carries QoS 2 state (a PUBLISH or a
	// PUBREL) not yet stored. Written before its record is durable, a
	// crash would leave the client holding a packet id the restarted
	// broker no longer knows (a later message with that id is then taken
	// for a duplicate and lost) or, for PUBREL, make the resent PUBLISH a
	// second delivery.
	holdUntil uint64
	// owedRetained are the retained messages owed after a SUBSCRIBE (retained.go);
	// nil when none are.
	owedRetained *retainedOwed

	idx int32 // in l.clients

	// Set from the v5 CONNECT.
	sendQuota int32  // client's Receive Maximum (≤ 65535): our QoS 1/2 send window
	maxOut    uint32 // client's Maximum Packet Size; 0 = protocol limit

	keepAlive uint16 // effective, seconds; 0 = none
	state     clientState
	version   codec.Version

	MigrateTo int32 // target loop when Feed returns FeedMigrate

	problemInfo     bool // Request Problem Information
	willOnClose     bool // publish the will when the connection closes
	cleanDisconnect bool
	dirty           bool
	authDone        bool
	reauthing       bool // a re-authentication is in progress (reauth.go)
	// claimed: the connection holds a directory reference on its client
	// id (clientDir) that no session has taken over yet.
	claimed bool

	// inboundQoS1 counts the v5 QoS 1 PUBLISHes whose PUBACK is not
	// written yet (our Receive Maximum, handlePublish).
	inboundQoS1 uint16
	// closedFor is the closeReason+1 the broker closed it for (0: it
	// did not), for the Disconnected hooks.
	closedFor uint8
}

// authFlow is the state of a CONNECT's authentication, and of v5
// re-authentication: kept after the CONNACK only when the client uses an
// Authentication Method (enhanced authentication, MQTT-4.12).
type authFlow struct {
	assignedID   []byte       // an assigned client id survives the CONNECT's second run
	connectRaw   []byte       // the CONNECT, copied while authentication waits
	call         *authCall    // outstanding Authenticate call
	authReq      *AuthRequest // the request of the current step
	authMethod   string       // v5 Authentication Method; "" = none
	authData     []byte       // final Authentication Data for the CONNACK
	authState    any
	authDeadline int64 // unix ns
	// user is the identity's user name (and hasUser whether there is
	// one): the CONNECT's, replaced by a verdict that names one.
	user    string
	hasUser bool
	userSet bool // user and hasUser are set (the Authenticator is asked)
	// pendingIP is the address whose pending authentications count this
	// one ("" once the count ended: bans.beginPending).
	pendingIP string

	// claim is the cluster-wide claim of the client id under way
	// (sessionmove.go); claimSettled: it ended, the CONNECT runs again.
	claim        *claimCall
	claimSettled bool
}

// flow returns c's authentication state, allocating it on first use.
func (c *Client) flow() *authFlow {
	if c.auth == nil {
		c.auth = new(authFlow)
	}
	return c.auth
}

// identity is who the client is, for the CONNECT p being handled.
func (c *Client) identity(p *codec.Connect) Identity {
	if af := c.auth; af != nil && af.userSet {
		return Identity{ClientID: c.id, Username: af.user, HasUsername: af.hasUser}
	}
	return Identity{ClientID: c.id, Username: string(p.Username), HasUsername: p.UsernameFlag}
}

// authMethod is the v5 Authentication Method of the CONNECT ("" = none).
func (c *Client) authMethod() string {
	if c.auth == nil {
		return ""
	}
	return c.auth.authMethod
}

// NewClient registers a new connection on l. Loop-only.
func (l *Loop) NewClient(conn Conn) *Client {
	c := new(Client)
	l.InitClient(c, conn)
	return c
}

// InitClient is NewClient for a Client the transport holds, a zero value
// inside its per-connection state: an idle connection then costs one
// allocation instead of two. c must not be copied afterwards. Loop-only.
func (l *Loop) InitClient(c *Client, conn Conn) {
	l.tick()
	*c = Client{l: l, conn: conn, lastSeen: l.now, problemInfo: true}
	l.addClient(c)
	l.counters.connectionsOpened++
}

// Feed handles every complete packet in buf and reports how many bytes it
// consumed; a partial packet is left for the next call. Slices of buf are
// not kept after Feed returns. Loop-only.
func (c *Client) Feed(buf []byte) (int, FeedResult) {
	l := c.l
	l.tick()
	if c.state != stateAwaitConnect {
		c.lastSeen = l.now
	}
	off := 0
	res := FeedContinue
	if c.state == stateAuthPending && len(buf) > l.b.opts.MaxPacketSize {
		// Nothing is read while a verdict is awaited, so the transport
		// buffers what arrives: a client that sends more than a packet's
		// worth before its CONNACK is not waiting for it.
		c.logViolation("more than the maximum packet size sent while authentication is pending", "")
		c.close()
		return len(buf), FeedClose
	}
	if c.state == stateConnected && len(buf) > 0 {
		if n := c.conn.OutboundBuffered(); n > l.b.readerLimit {
			// The client sends but does not read what it is answered
			// (PINGRESP, SUBACK, acks): every response would grow the
			// transport's outbound buffer without bound.
			c.closeFor(closeSlowReader, 0, "", slog.Int("unsent_bytes", n))
			return len(buf), FeedClose
		}
	}
	for off < len(buf) && (c.state <= stateConnected || c.state == stateAuthContinue) {
		if c.state == stateAwaitConnect && codec.Type(buf[off]>>4) != codec.CONNECT {
			// [MQTT-3.1.0-1] The first packet must be CONNECT: known from
			// its first byte, so the rest is never waited for.
			c.logViolation("first packet is not CONNECT", "MQTT-3.1.0-1")
			l.counters.closed[closeProtocolError]++
			res = FeedClose
			break
		}
		h, err := codec.Frame(buf[off:], l.b.opts.MaxPacketSize)
		if err == codec.ErrIncomplete {
			break
		}
		if err != nil {
			if c.state == stateAwaitConnect && connectLevel(buf[off:], h) == byte(codec.V5) {
				// A v5 CONNECT over the maximum packet size: CONNACK 0x95
				// says why, as soon as its protocol level has arrived.
				c.refuseConnect(codec.V5, err)
			} else {
				c.protocolViolation(err)
			}
			res = FeedClose
			break
		}
		body := buf[off+h.HeaderLen : off+h.Len()]
		if c.state == stateAuthContinue {
			if c.handleAuthStep(h, body) == FeedClose {
				res = FeedClose
				break
			}
			off += h.Len()
			continue
		}
		if c.state == stateAwaitConnect {
			r := c.handleConnect(h, body, buf[off:off+h.Len()])
			if r == FeedMigrate {
				return off, FeedMigrate
			}
			l.counters.packetsIn[codec.CONNECT]++
			l.counters.bytesIn += uint64(h.Len())
			if r == FeedClose {
				res = FeedClose
				break
			}
			off += h.Len()
			continue
		}
		l.counters.packetsIn[h.Type&15]++
		l.counters.bytesIn += uint64(h.Len())
		if h.Type == codec.PUBLISH && l.b.rateLimited && !c.chargePublish(h.Len()) {
			res = FeedClose
			break
		}
		if err := c.dispatch(h, body); err != nil {
			c.protocolViolation(err)
			res = FeedClose
			break
		}
		off += h.Len()
	}
	if c.state == stateClosing {
		res = FeedClose
	}
	if res == FeedContinue {
		l.feedDone(off) // batch.go
	} else {
		l.flush() // the transport closes or moves the connection next
	}
	if res == FeedClose {
		return len(buf), FeedClose
	}
	return off, res
}

// connectLevel returns the protocol level of the CONNECT whose fixed
// header h starts buf, or 0 if it has not arrived or the protocol name is
// not "MQTT" (§3.1.2.1: a 2-byte length, the name, then the level).
func connectLevel(buf []byte, h codec.FixedHeader) byte {
	v := buf[h.HeaderLen:]
	if h.HeaderLen == 0 || len(v) < 7 || v[0] != 0 || v[1] != 4 || string(v[2:6]) != "MQTT" {
		return 0
	}
	return v[6]
}

// NeedMore reports whether Feed would consume nothing from a buffer of
// buffered bytes starting with head (its first 5 bytes, or all of them if
// fewer): head starts a packet allowed in c's state whose fixed header is
// complete and within the maximum packet size, but whose body has not all
// arrived. The transport then waits for more bytes without handing the
// whole buffer over (which may cost it a copy of everything buffered, per
// read: quadratic in the size of a packet that trickles in). Loop-only.
func (c *Client) NeedMore(head []byte, buffered int) bool {
	if len(head) == 0 || c.state > stateConnected {
		return false
	}
	if c.state == stateAwaitConnect && codec.Type(head[0]>>4) != codec.CONNECT {
		return false // Feed refuses it at once
	}
	if c.state == stateConnected && c.conn.OutboundBuffered() > c.l.b.readerLimit {
		return false // Feed closes a slow reader at once
	}
	h, err := codec.Frame(head, c.l.b.opts.MaxPacketSize)
	return err == codec.ErrIncomplete && h.HeaderLen > 0 && buffered < h.Len()
}

func (c *Client) dispatch(h codec.FixedHeader, body []byte) error {
	l := c.l
	switch h.Type {
	case codec.PUBLISH:
		p := &l.pkt.publish
		if err := p.Decode(h, body, c.version); err != nil {
			return err
		}
		return c.handlePublish(p)
	case codec.PUBACK, codec.PUBREC, codec.PUBREL, codec.PUBCOMP:
		a := &l.pkt.ack
		if err := a.Decode(h, body, c.version); err != nil {
			return err
		}
		return c.handleAck(a)
	case codec.SUBSCRIBE:
		s := &l.pkt.sub
		if err := s.Decode(h, body, c.version); err != nil {
			// A filter that breaks only the filter syntax is answered per
			// filter in the SUBACK (handleSubscribe); Decode has still
			// filled s completely. Anything else closes.
			if re := codec.AsReasonError(err); re == nil || re.Code != codec.TopicFilterInvalid {
				return err
			}
		}
		return c.handleSubscribe(s)
	case codec.UNSUBSCRIBE:
		u := &l.pkt.unsub
		if err := u.Decode(h, body, c.version); err != nil {
			return err
		}
		return c.handleUnsubscribe(u)
	case codec.PINGREQ:
		if err := codec.DecodeEmpty(h); err != nil {
			return err
		}
		c.queueControl(codec.AppendPingresp(c.controlBuf()))
		return nil
	case codec.DISCONNECT:
		d := &l.pkt.disc
		if err := d.Decode(h, body, c.version); err != nil {
			return err
		}
		return c.handleDisconnect(d)
	case codec.AUTH:
		a := &l.pkt.auth
		if err := a.Decode(h, body, c.version); err != nil {
			return err
		}
		return c.handleReauth(a)
	case codec.CONNECT:
		// [MQTT-3.1.0-2] A second CONNECT is a protocol error.
		return errProtocol("second CONNECT", "MQTT-3.1.0-2")
	default:
		return errProtocol("packet type "+typeName(h.Type)+" is not sent to a server", "")
	}
}

func typeName(t codec.Type) string {
	names := [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	return names[t&15]
}

var errNotBound = errors.New("broker: loop not bound to an event loop")
