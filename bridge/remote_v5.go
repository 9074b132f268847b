package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/mcutie/mcutie/broker"
)

// MQTT 5 remotes, with paho.golang's low-level client (autopaho would
// reconnect and resend by itself; the bridge does both, in its order).
// Publishes are written in call order with PublishMethod_AsyncSend, so
// up to the remote's Receive Maximum are in flight at once; the PUBACK
// of each comes back on a channel handed to the session state through
// ackSession.

// v5Remote is one MQTT 5 connection.
type v5Remote struct {
	cli      *paho.Client
	nc       net.Conn
	sess     *ackSession
	dead     chan struct{}
	deadOnce sync.Once
	ctx      context.Context // ends with the connection
	cancel   context.CancelFunc
}

// ackSession is paho's in-memory session state that hands the response
// of the next PUBLISH to the channel set by publish (one sender: the
// bridge's, so "next" is unambiguous).
type ackSession struct {
	*state.State
	mu   sync.Mutex
	next chan packets.ControlPacket
}

func (s *ackSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	if p.Type() == packets.PUBLISH {
		s.mu.Lock()
		if s.next != nil {
			resp, s.next = s.next, nil
		}
		s.mu.Unlock()
	}
	return s.State.AddToSession(ctx, p, resp)
}

func dialV5(ctx context.Context, br *Bridge) (remote, error) {
	nc, err := br.dialNet(ctx)
	if err != nil {
		return nil, err
	}
	r := &v5Remote{nc: nc, sess: &ackSession{State: state.NewInMemory()}, dead: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	c := &br.cfg
	r.cli = paho.NewClient(paho.ClientConfig{
		ClientID:                   c.ClientID,
		Conn:                       packets.NewThreadSafeConn(nc),
		Session:                    r.sess,
		EnableManualAcknowledgment: true,
		PacketTimeout:              c.ConnectTimeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			r.received(br, pr.Packet)
			return true, nil
		}},
		OnClientError:      func(error) { r.end() },
		OnServerDisconnect: func(*paho.Disconnect) { r.end() },
	})
	cp := &paho.Connect{ClientID: c.ClientID, KeepAlive: uint16(c.KeepAlive / time.Second), CleanStart: c.CleanSession,
		Properties: &paho.ConnectProperties{ReceiveMaximum: ptr(uint16(min(c.MaxInflight, 65535)))}}
	if !c.CleanSession {
		cp.Properties.SessionExpiryInterval = ptr(uint32(min(c.SessionExpiry/time.Second, 0xFFFFFFFF)))
	}
	if c.Username != "" {
		cp.Username, cp.UsernameFlag = c.Username, true
	}
	if br.password != "" {
		cp.Password, cp.PasswordFlag = []byte(br.password), true
	}
	cctx, cancel := context.WithTimeout(ctx, c.ConnectTimeout)
	defer cancel()
	ca, err := r.cli.Connect(cctx, cp)
	if err != nil {
		r.close()
		if ca != nil {
			return nil, fmt.Errorf("CONNACK 0x%02X: %w", ca.ReasonCode, err)
		}
		return nil, err
	}
	go func() {
		select {
		case <-r.cli.Done():
			r.end()
		case <-r.dead:
		}
	}()
	var subs []paho.SubscribeOptions
	for i := range c.Topics {
		if t := &c.Topics[i]; t.in() {
			// No Local: what this bridge publishes there does not come
			// back [MQTT-3.8.3-3]. Retain As Published keeps the retain
			// flag across the bridge; Retain Handling 1: retained
			// messages only for a new subscription, not at every
			// reconnect of a persistent session.
			subs = append(subs, paho.SubscribeOptions{Topic: t.remoteFilter(), QoS: t.QoS, NoLocal: true, RetainAsPublished: true, RetainHandling: 1})
		}
	}
	if len(subs) > 0 {
		sa, err := r.cli.Subscribe(cctx, &paho.Subscribe{Subscriptions: subs})
		if err != nil {
			r.close()
			return nil, fmt.Errorf("SUBSCRIBE: %w", err)
		}
		for i, code := range sa.Reasons {
			if code >= 0x80 && i < len(subs) {
				r.close()
				return nil, fmt.Errorf("SUBSCRIBE %q refused: reason 0x%02X", subs[i].Topic, code)
			}
		}
	}
	return r, nil
}

func ptr[T any](v T) *T { return &v }

// received hands a remote PUBLISH to the bridge.
func (r *v5Remote) received(br *Bridge, p *paho.Publish) {
	pub := broker.Publication{Payload: p.Payload, QoS: p.QoS, Retain: p.Retain}
	if pp := p.Properties; pp != nil {
		if pp.MessageExpiry != nil {
			pub.MessageExpiry = time.Duration(*pp.MessageExpiry) * time.Second
		}
		if pp.PayloadFormat != nil {
			pub.PayloadFormat = *pp.PayloadFormat
		}
		pub.ContentType, pub.ResponseTopic, pub.CorrelationData = pp.ContentType, pp.ResponseTopic, pp.CorrelationData
		for _, u := range pp.User {
			pub.UserProperties = append(pub.UserProperties, broker.UserProperty{Key: u.Key, Value: u.Value})
		}
	}
	br.inbound(p.Topic, pub, func() {
		if p.QoS > 0 {
			_ = r.cli.Ack(p) // fails only once the connection is gone: the remote sends it again
		}
	})
}

func (r *v5Remote) publish(m *outItem) (ackWait, error) {
	d := m.msg
	p := &paho.Publish{Topic: m.topic, QoS: m.qos, Retain: d.Retain, Payload: d.Payload}
	if d.MessageExpiry > 0 || d.PayloadFormat != 0 || d.ContentType != "" || d.ResponseTopic != "" || d.CorrelationData != nil || len(d.UserProperties) > 0 {
		pp := &paho.PublishProperties{ContentType: d.ContentType, ResponseTopic: d.ResponseTopic, CorrelationData: d.CorrelationData}
		if d.MessageExpiry > 0 {
			pp.MessageExpiry = ptr(uint32(min((d.MessageExpiry+time.Second-1)/time.Second, 0xFFFFFFFF)))
		}
		if d.PayloadFormat != 0 {
			pp.PayloadFormat = ptr(d.PayloadFormat)
		}
		for _, u := range d.UserProperties {
			pp.User = append(pp.User, paho.UserProperty{Key: u.Key, Value: u.Value})
		}
		p.Properties = pp
	}
	if m.qos == 0 {
		_, err := r.cli.Publish(r.ctx, p)
		return nil, err
	}
	ch := make(chan packets.ControlPacket, 1)
	for {
		r.sess.mu.Lock()
		r.sess.next = ch
		r.sess.mu.Unlock()
		_, err := r.cli.PublishWithOptions(r.ctx, p, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
		r.sess.mu.Lock()
		r.sess.next = nil // not taken when the publish failed before the session
		r.sess.mu.Unlock()
		if err == nil {
			break
		}
		// The remote's Receive Maximum was full for PacketTimeout: a
		// slow remote, not a dead one; wait on (the connection's end
		// cancels r.ctx).
		if !errors.Is(err, context.DeadlineExceeded) || r.ctx.Err() != nil {
			return nil, err
		}
	}
	return func(dead <-chan struct{}) ackResult {
		select {
		case cp := <-ch:
			if cp.Type != packets.PUBACK {
				return ackLost // the session was closed
			}
			if pa, ok := cp.Content.(*packets.Puback); ok && pa.ReasonCode >= 0x80 {
				return ackRefused
			}
			return ackOK
		case <-dead:
			return ackLost
		}
	}, nil
}

func (r *v5Remote) done() <-chan struct{} { return r.dead }

// end marks the connection dead (from paho's callbacks).
func (r *v5Remote) end() {
	r.deadOnce.Do(func() {
		r.cancel()
		close(r.dead)
	})
}

func (r *v5Remote) close() {
	select {
	case <-r.dead:
	default:
		_ = r.cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
	r.end()
	_ = r.nc.Close()
	_ = r.sess.Close() // releases what waits on it
}
