package hooks

import (
	"errors"
	"net/netip"

	"github.com/mcutie/mcutie/codec"
)

// Event names one point at which the broker calls hooks.
type Event uint8

// The events, in the order a connection meets them. Each has its interface
// below (a hook implements the ones it Provides).
const (
	PreConnect        Event = iota // a connection accepted, before any byte is read (PreConnectHook)
	Connect                        // a CONNECT that passed authentication: allow or deny, may wait (ConnectHook)
	Connected                      // CONNACK sent (ConnectedHook)
	Disconnected                   // the connection ended, with the reason (DisconnectedHook)
	SessionCreated                 // a new session (SessionHook)
	SessionResumed                 // a stored or offline session resumed (SessionHook)
	SessionTerminated              // a session ended: expired, cleaned or taken over (SessionHook)
	Subscribe                      // one filter of a SUBSCRIBE: allow, deny, lower the QoS, rewrite (SubscribeHook)
	Subscribed                     // a filter was added (SubscribedHook)
	Unsubscribed                   // a filter was removed (UnsubscribedHook)
	PublishTopic                   // a client's PUBLISH topic, before the ACL check: rewrite it (PublishTopicHook)
	Publish                        // a PUBLISH before it is routed: pass, drop or change it (PublishHook)
	WillPublished                  // a will was published (WillHook)
	RetainedChanged                // a retained message set or cleared (RetainedHook)
	Forward                        // one delivery to one subscriber, before it is written: pass, drop or change that copy (ForwardHook)
	Delivered                      // a PUBLISH written to a subscriber's connection (DeliveredHook)
	Acked                          // a subscriber acknowledged a QoS 1/2 delivery: PUBACK or PUBCOMP (AckedHook)
	Dropped                        // a delivery dropped, with the reason (DroppedHook)
	numEvents
)

var eventNames = [numEvents]string{
	PreConnect:        "pre_connect",
	Connect:           "connect",
	Connected:         "connected",
	Disconnected:      "disconnected",
	SessionCreated:    "session_created",
	SessionResumed:    "session_resumed",
	SessionTerminated: "session_terminated",
	Subscribe:         "subscribe",
	Subscribed:        "subscribed",
	Unsubscribed:      "unsubscribed",
	PublishTopic:      "publish_topic",
	Publish:           "publish",
	WillPublished:     "will_published",
	RetainedChanged:   "retained_changed",
	Forward:           "forward",
	Delivered:         "delivered",
	Acked:             "acked",
	Dropped:           "dropped",
}

// String is the event's name in logs and metric labels.
func (e Event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return "unknown"
}

// Events is a set of events.
type Events uint32

// EventsOf returns the set of es.
func EventsOf(es ...Event) Events {
	var s Events
	for _, e := range es {
		s |= 1 << e
	}
	return s
}

// Has reports whether e is in the set.
func (s Events) Has(e Event) bool { return s&(1<<e) != 0 }

// Client is who a connection is, as the broker knows it when the event
// fires (before authentication, Username is what the CONNECT claims).
type Client struct {
	ID          string
	Username    string
	HasUsername bool
	// Remote is the client's address: the PROXY protocol's when the
	// listener expects one, else the socket's. Set for the connection
	// events (Connect, Connected, Disconnected, Subscribe…), empty for
	// Publish, where formatting it per message would cost an allocation.
	Remote string
	// Listener is the listener that accepted the connection, as
	// configured ("tcp://0.0.0.0:1883"), when the transport says (set
	// with Remote; empty for in-process clients).
	Listener string
	Version  codec.Version
}

// OriginKind says where a message comes from.
type OriginKind uint8

const (
	FromClient OriginKind = iota // a client's PUBLISH (Origin.Client names it)
	FromServer                   // the embedding API (Broker.Publish)
	FromWill                     // a will
	FromSys                      // the broker's $SYS topics
)

// Message is a message as hooks see it. Topic, Payload and Props belong to
// the broker and are read-only: a Publish hook that changes the message
// returns a new one (copy-on-write), since the payload is shared by every
// subscriber.
type Message struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props are the v5 properties forwarded with the message (nil:
	// none): payload format, content type, response topic, correlation
	// data, user properties.
	Props *codec.Properties
	// Origin is who published it; Client is set for FromClient and
	// FromWill.
	Origin OriginKind
	Client *Client
}

// Subscription is one filter of a SUBSCRIBE, as a Subscribe hook may
// change it.
type Subscription struct {
	Filter []byte // as subscribed, $share/… included
	QoS    byte   // the QoS requested (a hook may lower it)
}

// SessionEnd says why a session ended (SessionTerminated).
type SessionEnd uint8

const (
	SessionExpired  SessionEnd = iota // its expiry passed while offline
	SessionCleaned                    // a clean start, or a connection without a persistent session ended
	SessionTakenOut                   // discarded by a CONNECT with Clean Start (its connection was taken over first)
)

// ErrDeny is returned by a decision hook to refuse. A hook may return any
// error; one that carries a *codec.ReasonError chooses the reason code the
// client is told (for example codec.Banned), any other is "not
// authorized".
var ErrDeny = errors.New("hooks: denied")

// ErrDrop is returned by a Publish hook to drop the message (v5 QoS 1/2
// publishers are told 0x87 Not authorized with the reason).
var ErrDrop = errors.New("hooks: message dropped")

// Hook is one extension. Provides names the events it implements; for
// each, the hook implements that event's interface. Name labels its log
// lines and metrics.
type Hook interface {
	Name() string
	Provides() Events
}

// Starter and Stopper are a plugin's lifecycle: Registry.Add starts a
// hook that has Start, Registry.Stop stops those that have Stop, in
// reverse order.
type Starter interface{ Start() error }
type Stopper interface{ Stop() error }

// PreConnectHook decides on a connection as it is accepted, from its
// address and listener ("tcp://127.0.0.1:1883"): an error closes it at
// once. Called on the accepting loop: must be cheap.
type PreConnectHook interface {
	OnPreConnect(remote netip.Addr, listener string) error
}

// ConnectHook decides on a CONNECT once it has passed authentication
// (the CONNECT as sent: will, clean start, properties): nil allows it, an
// error refuses it (CONNACK 0x87, or the ReasonError's code). It runs on
// the registry's worker pool and may wait; past Options.Timeout the
// CONNECT is refused. c and p are valid only during the call.
type ConnectHook interface {
	OnConnect(c *Client, p *codec.Connect) error
}

// ConnectedHook is told a client's CONNACK was sent.
type ConnectedHook interface {
	OnConnected(c *Client, sessionPresent bool)
}

// DisconnectedHook is told a client's connection ended; reason says why
// ("client disconnected", "keep alive timeout", a closeReason's label…).
type DisconnectedHook interface {
	OnDisconnected(c *Client, reason string)
}

// SessionHook is told of sessions created, resumed and terminated.
type SessionHook interface {
	OnSessionCreated(clientID string)
	OnSessionResumed(clientID string)
	OnSessionTerminated(clientID string, why SessionEnd)
}

// SubscribeHook decides on one filter of a SUBSCRIBE after the ACL: nil
// allows s as the hook leaves it (it may lower s.QoS or replace
// s.Filter), an error refuses this filter (SUBACK 0x87 v5, 0x80 3.x).
type SubscribeHook interface {
	OnSubscribe(c *Client, s *Subscription) error
}

// SubscribedHook is told a filter was added (or replaced) for a client.
type SubscribedHook interface {
	OnSubscribed(c *Client, filter []byte, qos byte)
}

// UnsubscribedHook is told a filter was removed.
type UnsubscribedHook interface {
	OnUnsubscribed(c *Client, filter []byte)
}

// PublishTopicHook may rewrite the topic of a client's PUBLISH before
// anything else looks at it (the ACL check, $delayed and $p2p, the
// Publish hooks): it returns the topic to use instead, or nil to leave it.
// The broker checks the result as a topic name (an invalid one drops the
// PUBLISH, as a refusal) and copies it. Runs on the event loop, for every
// client PUBLISH: keep it cheap.
type PublishTopicHook interface {
	OnPublishTopic(c *Client, topic []byte) []byte
}

// PublishHook intercepts a message before it is routed (and retained):
// return nil, nil to pass it as it is; a new Message to route that instead
// (the broker copies it); nil, ErrDrop (or any error) to drop it. Called
// for every PUBLISH of a client, every Broker.Publish and every will.
type PublishHook interface {
	OnPublish(m *Message) (*Message, error)
}

// WillHook is told a will was published.
type WillHook interface {
	OnWillPublished(clientID string, m *Message)
}

// RetainedHook is told a retained message was set or (empty payload)
// cleared.
type RetainedHook interface {
	OnRetainedChanged(m *Message)
}

// ForwardHook decides on one delivery to one subscriber (live, queued or
// retained), as it is written to the connection: return nil, nil to pass
// it; a new Message for this subscriber's copy (the broker copies it; the
// topic must stay a valid topic name); nil and an error to drop it, as if
// sent (counted as dropped, reason "hook"). Called on the subscriber's
// loop for every delivery: it must be cheap.
type ForwardHook interface {
	OnForward(to *Client, m *Message) (*Message, error)
}

// DeliveredHook is told a PUBLISH was written to a subscriber's connection
// (qos: the delivered QoS).
type DeliveredHook interface {
	OnDelivered(to *Client, m *Message, qos byte)
}

// AckedHook is told a subscriber acknowledged a QoS 1 or 2 delivery
// (PUBACK, or PUBCOMP).
type AckedHook interface {
	OnAcked(to *Client, m *Message)
}

// DroppedHook is told a delivery was dropped, and why: the label of
// mcutie_messages_dropped_total ("slow_consumer", "queue_full",
// "expired", "too_large", "hook", …). to.ID names the session; the
// rest of to is empty when it has no connection.
type DroppedHook interface {
	OnDropped(to *Client, m *Message, reason string)
}
