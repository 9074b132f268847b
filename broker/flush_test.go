package broker

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// resetConn fails one write and closes its client from inside Writev, as
// gnet does when the peer has reset the connection.
type resetConn struct {
	fakeConn
	c     *Client
	reset bool
}

func (r *resetConn) Writev(bufs [][]byte) (int, error) {
	if r.reset {
		r.reset = false
		r.closed = true
		r.c.Closed()
		return 0, errors.New("connection reset by peer")
	}
	return r.fakeConn.Writev(bufs)
}

// TestFlushSurvivesCloseInsideWrite: a connection closed from inside its
// own write (its will then published, so the loop flushes again, nested)
// neither crashes the loop nor loses the other connections' output, and
// its output buffer goes back to the loop once.
func TestFlushSurvivesCloseInsideWrite(t *testing.T) {
	b := newTestBroker(t, 1)
	l := b.loops[0]
	var outs []*fakeConn
	for _, id := range []string{"s1", "s2", "s3"} {
		c, fc := connectClient(t, b, id, codec.V311, true)
		subscribe(t, c, codec.V311, "t/#", 0)
		outs = append(outs, fc)
	}
	// The victim subscribes too and has a will on t/will.
	rc := &resetConn{fakeConn: fakeConn{keep: true}}
	victim := l.NewClient(rc)
	rc.c = victim
	cp := codec.Connect{ProtocolName: []byte("MQTT"), Version: codec.V311, CleanStart: true, ClientID: []byte("victim"), KeepAlive: 60,
		WillFlag: true, WillTopic: []byte("t/will"), WillPayload: []byte("gone")}
	victim.Feed(cp.Append(nil))
	subscribe(t, victim, codec.V311, "t/#", 0)
	for _, fc := range outs {
		fc.out = fc.out[:0]
	}
	rc.reset = true

	pub, _ := connectClient(t, b, "pub", codec.V311, false)
	p := codec.Publish{Topic: []byte("t/x"), Payload: []byte("hello")}
	pub.Feed(p.Append(nil, codec.V311))

	if !rc.closed {
		t.Fatal("the victim's write did not run")
	}
	for i, fc := range outs {
		if !bytes.Contains(fc.out, []byte("hello")) || !bytes.Contains(fc.out, []byte("gone")) {
			t.Errorf("subscriber s%d got %q, want the message and the victim's will", i+1, fc.out)
		}
	}
	if l.outTaken != 0 {
		t.Errorf("%d output buffers still taken after the pass", l.outTaken)
	}
	seen := map[*outBuf]bool{}
	for _, ob := range l.freeOut {
		if seen[ob] {
			t.Fatal("an output buffer is on the free list twice")
		}
		seen[ob] = true
	}
}
