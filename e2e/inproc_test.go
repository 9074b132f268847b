package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// In-process clients (broker/inproc.go: Broker.Connect) with network
// paho.golang v5 clients.

func payloads(ds []*broker.Delivered) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Topic+"="+string(d.Payload))
	}
	return out
}

func inprocConnect(t testing.TB, b *broker.Broker, opts broker.ConnectOptions) *broker.InProcClient {
	t.Helper()
	c, err := b.Connect(embedCtx(t), opts)
	if err != nil {
		t.Fatalf("Connect %q: %v", opts.ClientID, err)
	}
	t.Cleanup(c.Disconnect)
	return c
}

// A network client and an in-process client exchange messages both ways
// at QoS 0, 1 and 2, with their properties; the QoS 2 flows complete
// (nothing stays inflight).
func TestInProc_ExchangeQoS012(t *testing.T) {
	tb := start(t, broker.Options{})
	net5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ip-net", CleanStart: true, KeepAlive: 30})
	net5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "to-net/#", QoS: 2}}})
	ic := inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-proc", CleanStart: true})
	if ic.ClientID() != "ip-proc" || ic.SessionPresent() {
		t.Fatalf("ClientID %q, SessionPresent %v", ic.ClientID(), ic.SessionPresent())
	}
	sink := newEmbedSink()
	if err := ic.Subscribe(embedCtx(t), "to-proc/#", 2, sink.add); err != nil {
		t.Fatal(err)
	}
	if n := tb.B.ConnectedClients(); n != 2 {
		t.Fatalf("ConnectedClients %d, want 2", n)
	}
	for q := byte(0); q <= 2; q++ {
		err := ic.Publish(embedCtx(t), broker.Publication{Topic: fmt.Sprintf("to-net/%d", q), Payload: []byte{'p', '0' + q}, QoS: q,
			ContentType: "text/plain", UserProperties: []broker.UserProperty{{Key: "q", Value: fmt.Sprint(q)}}})
		if err != nil {
			t.Fatalf("Publish QoS %d: %v", q, err)
		}
		p := net5.recv(t)
		if p.Topic != fmt.Sprintf("to-net/%d", q) || p.QoS != q || string(p.Payload) != string([]byte{'p', '0' + q}) ||
			p.Properties == nil || p.Properties.ContentType != "text/plain" || p.Properties.User.Get("q") != fmt.Sprint(q) {
			t.Fatalf("network client got %+v (%+v), want QoS %d", p, p.Properties, q)
		}
		net5.publish(t, &paho.Publish{Topic: fmt.Sprintf("to-proc/%d", q), QoS: q, Payload: []byte{'n', '0' + q},
			Properties: &paho.PublishProperties{ResponseTopic: "to-net/reply", CorrelationData: []byte{q}}})
		d := sink.waitN(t, int(q)+1)[q]
		if d.Topic != fmt.Sprintf("to-proc/%d", q) || d.QoS != q || string(d.Payload) != string([]byte{'n', '0' + q}) ||
			d.ResponseTopic != "to-net/reply" || len(d.CorrelationData) != 1 || d.CorrelationData[0] != q {
			t.Fatalf("in-process client got %+v, want QoS %d", d, q)
		}
	}
	// A request/response round: the in-process client answers on the
	// ResponseTopic from its handler.
	if err := ic.Subscribe(embedCtx(t), "rpc/req", 1, func(m *broker.Delivered) {
		_ = ic.Publish(context.Background(), broker.Publication{Topic: m.ResponseTopic, Payload: append([]byte("re:"), m.Payload...), QoS: 1, CorrelationData: m.CorrelationData})
	}); err != nil {
		t.Fatal(err)
	}
	net5.publish(t, &paho.Publish{Topic: "rpc/req", QoS: 1, Payload: []byte("ping"), Properties: &paho.PublishProperties{ResponseTopic: "to-net/rpc", CorrelationData: []byte("c1")}})
	if p := net5.recv(t); p.Topic != "to-net/rpc" || string(p.Payload) != "re:ping" || string(p.Properties.CorrelationData) != "c1" {
		t.Fatalf("response %+v", p)
	}
	v5Wait(t, "nothing inflight", func() bool {
		st, _ := tb.B.StatsNow(embedCtx(t))
		return st.Inflight == 0
	})
	// Unsubscribe: no more deliveries.
	if err := ic.Unsubscribe(embedCtx(t), "to-proc/#"); err != nil {
		t.Fatal(err)
	}
	net5.publish(t, &paho.Publish{Topic: "to-proc/after", QoS: 1, Payload: []byte("z")})
	time.Sleep(v5Quiet)
	if got := sink.all(); len(got) != 3 {
		t.Fatalf("after Unsubscribe: %v", payloads(got))
	}
	// Many QoS 1/2 publishes at once, beyond no window.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- ic.Publish(embedCtx(t), broker.Publication{Topic: "to-net/many", Payload: []byte(fmt.Sprint(i)), QoS: byte(1 + i%2)})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		net5.recv(t)
	}
	ic.Disconnect()
	<-ic.Done()
	if !errors.Is(ic.Err(), broker.ErrDisconnected) {
		t.Fatalf("Err after Disconnect: %v", ic.Err())
	}
	if err := ic.Publish(embedCtx(t), broker.Publication{Topic: "to-net/x"}); err == nil {
		t.Fatal("Publish after Disconnect succeeded")
	}
	v5Wait(t, "one client left", func() bool { return tb.B.ConnectedClients() == 1 })
}

// A persistent in-process session resumed after Disconnect: its
// subscription stayed, the QoS 1 messages published meanwhile and the one
// its handler had not returned from come (that one with Dup), in order,
// once Subscribe gives them a handler again.
func TestInProc_PersistentSessionResumed(t *testing.T) {
	tb := start(t, broker.Options{})
	opts := broker.ConnectOptions{ClientID: "ip-pers", CleanStart: true, SessionExpiry: time.Hour, ReceiveMaximum: 4}
	ic := inprocConnect(t, tb.B, opts)
	entered, release := make(chan struct{}), make(chan struct{})
	sink := newEmbedSink()
	if err := ic.Subscribe(embedCtx(t), "pers/#", 1, func(m *broker.Delivered) {
		if string(m.Payload) == "block" {
			close(entered)
			<-release
			return
		}
		sink.add(m)
	}); err != nil {
		t.Fatal(err)
	}
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ip-pers-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "pers/a", QoS: 1, Payload: []byte("first")})
	sink.waitN(t, 1)
	pub.publish(t, &paho.Publish{Topic: "pers/a", QoS: 1, Payload: []byte("block")})
	<-entered
	ic.Disconnect() // the handler has not returned: "block" is not acknowledged
	close(release)
	<-ic.Done()
	for i := 0; i < 5; i++ {
		pub.publish(t, &paho.Publish{Topic: "pers/b", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	st, _ := tb.B.StatsNow(embedCtx(t))
	if st.Sessions != 2 || st.Connected != 1 {
		t.Fatalf("while away: %d sessions, %d connected; want 2, 1", st.Sessions, st.Connected)
	}

	opts.CleanStart = false
	ic2 := inprocConnect(t, tb.B, opts)
	if !ic2.SessionPresent() {
		t.Fatal("SessionPresent false on resuming")
	}
	time.Sleep(v5Quiet) // the queued messages come, and wait for a handler
	sink2 := newEmbedSink()
	if err := ic2.Subscribe(embedCtx(t), "pers/#", 1, sink2.add); err != nil {
		t.Fatal(err)
	}
	got := sink2.waitN(t, 6)
	if s := fmt.Sprint(payloads(got)); s != "[pers/a=block pers/b=0 pers/b=1 pers/b=2 pers/b=3 pers/b=4]" {
		t.Fatalf("resumed session got %s", s)
	}
	if !got[0].Dup {
		t.Fatal("the message handed out before Disconnect is not marked Dup")
	}
	// Also with a default Handler: the session's messages go to it
	// before any Subscribe.
	ic2.Disconnect()
	pub.publish(t, &paho.Publish{Topic: "pers/c", QoS: 1, Payload: []byte("x")})
	sink3 := newEmbedSink()
	opts.Handler = sink3.add
	ic3 := inprocConnect(t, tb.B, opts)
	if got := sink3.waitN(t, 1); got[0].Topic != "pers/c" {
		t.Fatalf("default handler got %v", payloads(got))
	}
	// A clean start drops the session.
	ic3.Disconnect()
	opts.CleanStart, opts.Handler, opts.SessionExpiry = true, nil, 0
	ic4 := inprocConnect(t, tb.B, opts)
	if ic4.SessionPresent() {
		t.Fatal("SessionPresent with CleanStart")
	}
	ic4.Disconnect()
	v5Wait(t, "session gone", func() bool {
		st, _ := tb.B.StatsNow(embedCtx(t))
		return st.Sessions == 1
	})
}

// No Local, retained messages on subscribe, Retain Handling and the
// broker-assigned client id behave as for a network client.
func TestInProc_NoLocalRetainedAssignedID(t *testing.T) {
	tb := start(t, broker.Options{})
	if err := tb.B.PublishMessage(embedCtx(t), broker.Publication{Topic: "ret/a", Payload: []byte("kept"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	ic := inprocConnect(t, tb.B, broker.ConnectOptions{CleanStart: true})
	if id := ic.ClientID(); id == "" || strings.HasPrefix(id, broker.ServerClientIDPrefix) {
		t.Fatalf("assigned client id %q", id)
	}
	sink := newEmbedSink()
	if err := ic.Subscribe(embedCtx(t), "ret/#", 1, sink.add); err != nil {
		t.Fatal(err)
	}
	if d := sink.waitN(t, 1)[0]; d.Topic != "ret/a" || !d.Retain || string(d.Payload) != "kept" {
		t.Fatalf("retained on subscribe: %+v", d)
	}
	never := newEmbedSink()
	if err := ic.SubscribeWith(embedCtx(t), broker.ClientSubscription{Filter: "ret/+", QoS: 1, RetainHandling: 2}, never.add); err != nil {
		t.Fatal(err)
	}

	net5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ip-nl-net", CleanStart: true, KeepAlive: 30})
	net5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "nl/#", QoS: 1}}})
	local := newEmbedSink()
	if err := ic.SubscribeWith(embedCtx(t), broker.ClientSubscription{Filter: "nl/#", QoS: 1, NoLocal: true}, local.add); err != nil {
		t.Fatal(err)
	}
	echo := newEmbedSink()
	if err := ic.Subscribe(embedCtx(t), "echo/#", 1, echo.add); err != nil {
		t.Fatal(err)
	}
	if err := ic.Publish(embedCtx(t), broker.Publication{Topic: "nl/x", Payload: []byte("mine"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := ic.Publish(embedCtx(t), broker.Publication{Topic: "echo/x", Payload: []byte("back"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if p := net5.recv(t); p.Topic != "nl/x" {
		t.Fatalf("network subscriber got %s", p.Topic)
	}
	echo.waitN(t, 1) // its own message on a filter without No Local
	net5.publish(t, &paho.Publish{Topic: "nl/y", QoS: 1, Payload: []byte("theirs")})
	if got := local.waitN(t, 1); len(got) != 1 || got[0].Topic != "nl/y" {
		t.Fatalf("No Local: the in-process client got %v", payloads(got))
	}
	time.Sleep(v5Quiet)
	if got := local.all(); len(got) != 1 {
		t.Fatalf("No Local: the in-process client got %v", payloads(got))
	}
	if got := never.all(); len(got) != 0 {
		t.Fatalf("RetainHandling 2: got %v", payloads(got))
	}
}

// annOnly lets the identity "ann" use ann/#, nobody anything else.
type annOnly struct{}

func (annOnly) Allow(id *broker.Identity, topic []byte, _ broker.Access) bool {
	return id.Username == "ann" && strings.HasPrefix(string(topic), "ann/")
}
func (annOnly) Generation() uint64 { return 1 }

// The ACLs apply to an in-process client as its Username, unless
// BypassACL.
func TestInProc_ACL(t *testing.T) {
	tb := start(t, broker.Options{Authorizer: annOnly{}})
	ann := inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-ann", Username: "ann", CleanStart: true})
	sink := newEmbedSink()
	if err := ann.Subscribe(embedCtx(t), "ann/#", 1, sink.add); err != nil {
		t.Fatal(err)
	}
	var re *codec.ReasonError
	if err := ann.Subscribe(embedCtx(t), "bob/#", 1, sink.add); !errors.As(err, &re) || re.Code != codec.NotAuthorized {
		t.Fatalf("Subscribe bob/# as ann: %v, want 0x87", err)
	}
	if err := ann.Publish(embedCtx(t), broker.Publication{Topic: "bob/x", Payload: []byte("no"), QoS: 1}); !errors.As(err, &re) || re.Code != codec.NotAuthorized {
		t.Fatalf("Publish bob/x as ann: %v, want 0x87", err)
	}
	if err := ann.Publish(embedCtx(t), broker.Publication{Topic: "ann/x", Payload: []byte("yes"), QoS: 2}); err != nil {
		t.Fatal(err)
	}
	if got := sink.waitN(t, 1); got[0].Topic != "ann/x" {
		t.Fatalf("got %v", payloads(got))
	}
	anon := inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-anon", CleanStart: true})
	if err := anon.Subscribe(embedCtx(t), "ann/#", 1, sink.add); !errors.As(err, &re) || re.Code != codec.NotAuthorized {
		t.Fatalf("Subscribe as anonymous: %v, want 0x87", err)
	}
	admin := inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-admin", BypassACL: true, CleanStart: true})
	all := newEmbedSink()
	if err := admin.Subscribe(embedCtx(t), "#", 1, all.add); err != nil {
		t.Fatal(err)
	}
	if err := admin.Publish(embedCtx(t), broker.Publication{Topic: "bob/y", Payload: []byte("admin"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if got := all.waitN(t, 1); got[0].Topic != "bob/y" {
		t.Fatalf("admin got %v", payloads(got))
	}
	if _, err := tb.B.Connect(embedCtx(t), broker.ConnectOptions{ClientID: broker.ServerClientIDPrefix + "sub/x"}); err == nil {
		t.Fatal("Connect with a server client id accepted")
	}
}

// The Will is published when the connection ends without Disconnect; a
// network client taking the client id over ends the in-process
// connection (0x8E).
func TestInProc_WillAndTakeover(t *testing.T) {
	tb := start(t, broker.Options{})
	net5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ip-will-net", CleanStart: true, KeepAlive: 30})
	net5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "will/#", QoS: 1}}})
	will := &broker.Publication{Topic: "will/gone", Payload: []byte("bye"), QoS: 1}
	ic := inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-will", CleanStart: true, Will: will})
	ic.Disconnect()
	net5.quiet(t)
	ic = inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-will", CleanStart: true, Will: will})
	ic.Abort()
	if p := net5.recv(t); p.Topic != "will/gone" || string(p.Payload) != "bye" {
		t.Fatalf("will: %+v", p)
	}

	ic = inprocConnect(t, tb.B, broker.ConnectOptions{ClientID: "ip-taken", CleanStart: true})
	v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ip-taken", CleanStart: true, KeepAlive: 30})
	select {
	case <-ic.Done():
	case <-time.After(v5Timeout):
		t.Fatal("the in-process connection did not end on a takeover")
	}
	var re *codec.ReasonError
	if !errors.As(ic.Err(), &re) || re.Code != codec.SessionTakenOver {
		t.Fatalf("Err after a takeover: %v, want 0x8E", ic.Err())
	}
}
