package bridge

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
)

// MQTT 3.1.1 remotes, with paho.mqtt.golang: one client per connection,
// without its own reconnect (the bridge reconnects, with its backoff, and
// resends its pending messages in order). Publish queues each packet on
// the client's outbound channel, so calls from the bridge's one sender
// keep their order on the wire.

// v3Remote is one MQTT 3.1.1 connection.
type v3Remote struct {
	cli      mqtt.Client
	dead     chan struct{}
	deadOnce sync.Once
}

func dialV3(ctx context.Context, br *Bridge) (remote, error) {
	c := &br.cfg
	_, hostport, _ := c.remote()
	r := &v3Remote{dead: make(chan struct{})}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + hostport).
		SetClientID(c.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(c.CleanSession).
		SetKeepAlive(c.KeepAlive).
		SetConnectTimeout(c.ConnectTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetOrderMatters(true). // inbound messages are published locally in their order
		SetAutoAckDisabled(true).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			return br.dialNet(ctx)
		}).
		SetConnectionLostHandler(func(mqtt.Client, error) { r.end() }).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { r.received(br, m) })
	if c.Username != "" {
		o.SetUsername(c.Username)
	}
	if br.password != "" {
		o.SetPassword(br.password)
	}
	r.cli = mqtt.NewClient(o)
	tok := r.cli.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		r.close()
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		r.close()
		return nil, err
	}
	subs := map[string]byte{}
	for i := range c.Topics {
		if t := &c.Topics[i]; t.in() {
			subs[t.remoteFilter()] = t.QoS
		}
	}
	if len(subs) > 0 {
		st := r.cli.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) { r.received(br, m) })
		select {
		case <-st.Done():
		case <-ctx.Done():
			r.close()
			return nil, ctx.Err()
		}
		if err := st.Error(); err != nil {
			r.close()
			return nil, fmt.Errorf("SUBSCRIBE: %w", err)
		}
		if sst, ok := st.(*mqtt.SubscribeToken); ok {
			for f, code := range sst.Result() {
				if code == 0x80 {
					r.close()
					return nil, fmt.Errorf("SUBSCRIBE %q refused (SUBACK 0x80)", f)
				}
			}
		}
	}
	return r, nil
}

func (r *v3Remote) received(br *Bridge, m mqtt.Message) {
	br.inbound(m.Topic(), broker.Publication{Payload: m.Payload(), QoS: m.Qos(), Retain: m.Retained()}, m.Ack)
}

func (r *v3Remote) publish(m *outItem) (ackWait, error) {
	select {
	case <-r.dead:
		return nil, errNotConnected
	default:
	}
	tok := r.cli.Publish(m.topic, m.qos, m.msg.Retain, m.msg.Payload)
	if m.qos == 0 {
		return nil, nil // queued for the connection: as sent as QoS 0 gets
	}
	return func(dead <-chan struct{}) ackResult {
		select {
		case <-tok.Done():
			if tok.Error() != nil {
				return ackLost
			}
			return ackOK
		case <-dead:
			return ackLost
		}
	}, nil
}

func (r *v3Remote) done() <-chan struct{} { return r.dead }

func (r *v3Remote) end() { r.deadOnce.Do(func() { close(r.dead) }) }

func (r *v3Remote) close() {
	r.cli.Disconnect(0)
	r.end()
}
