package broker

// A connection's output: what one pass queues for it (outBuf: encoded
// control packets and PUBLISH headers, with the shared payloads as their
// own vectors), written with one writev at the end of the pass unless it
// waits for a commit or a QoS 2 gate (mustWait).

// outBuf is what one connection has to write at the end of the current
// pass: encoded headers and control packets (wbuf), the vectors for one
// writev (iov: slices of wbuf and shared payloads) and the messages whose
// payloads they reference (rel). A connection takes one from its loop's
// free list when it has something to send and gives it back once flushed,
// so an idle connection holds no output buffers at all.
type outBuf struct {
	wbuf    []byte
	iov     [][]byte
	rel     []*Message
	pending int // bytes in iov
	// gates are the QoS 2 messages in this output whose publisher's
	// inbound record is not yet durable (outMsg.gate).
	gates []*qos2Order
}

// out returns c's output buffer, taking one from the loop if c has none.
func (c *Client) out() *outBuf {
	if c.output == nil {
		c.output = c.l.takeOut()
	}
	return c.output
}

// controlBuf returns the output buffer's wbuf for a control packet to be
// appended to.
func (c *Client) controlBuf() []byte { return c.out().wbuf }

// queueControl takes b = append(controlBuf(), packet...) and queues the
// packet.
func (c *Client) queueControl(b []byte) {
	ob := c.out()
	start := len(ob.wbuf)
	ob.wbuf = b
	c.l.counters.packetsOut[b[start]>>4]++
	ob.iov = append(ob.iov, b[start:len(b):len(b)])
	ob.pending += len(b) - start
	c.markDirty()
}

func (c *Client) markDirty() {
	if !c.dirty {
		c.dirty = true
		c.l.dirty = append(c.l.dirty, c)
	}
}

// flush writes the queued vectors with one writev and gives the output
// buffer back to the loop.
func (c *Client) flush() {
	c.dirty = false
	ob := c.output
	if ob == nil {
		return
	}
	// Detached first: Writev may close the connection at once, and
	// Closed must not give the buffer back while it is being written.
	c.output = nil
	if len(ob.iov) > 0 && c.state != stateMigrating {
		n := ob.pending
		if _, err := c.conn.Writev(ob.iov); err == nil {
			c.l.counters.bytesOut += uint64(n)
		}
	}
	c.l.putOut(ob)
}

// outboundFull reports whether c is a slow consumer right now.
func (c *Client) outboundFull() bool {
	pending := 0
	if c.output != nil {
		pending = c.output.pending
	}
	return c.conn.OutboundBuffered()+pending > c.l.b.opts.MaxOutboundBytes
}

// Output buffers kept on a loop's free list are capped so that one burst
// (a huge fan-out) does not pin its memory for good.
const (
	maxKeptWbuf = 64 << 10
	maxKeptIov  = 4096
)

// takeOut returns an empty output buffer. Loop-only.
func (l *Loop) takeOut() *outBuf {
	l.outTaken++
	l.outPeak = max(l.outPeak, l.outTaken)
	if n := len(l.freeOut); n > 0 {
		ob := l.freeOut[n-1]
		l.freeOut[n-1] = nil
		l.freeOut = l.freeOut[:n-1]
		return ob
	}
	return new(outBuf)
}

// putOut releases what ob references and keeps it for reuse. Loop-only.
func (l *Loop) putOut(ob *outBuf) {
	l.outTaken--
	clear(ob.iov)
	ob.iov = ob.iov[:0]
	ob.pending = 0
	ob.wbuf = ob.wbuf[:0]
	for i, m := range ob.rel {
		m.release()
		ob.rel[i] = nil
	}
	ob.rel = ob.rel[:0]
	clear(ob.gates)
	ob.gates = ob.gates[:0]
	if cap(ob.wbuf) > maxKeptWbuf {
		ob.wbuf = nil
	}
	if cap(ob.iov) > maxKeptIov {
		ob.iov, ob.rel = nil, nil
	}
	l.freeOut = append(l.freeOut, ob)
}

// trimOut drops the free output buffers beyond the most that were in use
// at once since the last call, so memory follows the load. Loop-only
// (Tick).
func (l *Loop) trimOut() {
	if keep := max(l.outPeak-l.outTaken, 0); len(l.freeOut) > keep {
		clear(l.freeOut[keep:])
		l.freeOut = l.freeOut[:keep]
	}
	l.outPeak = l.outTaken
}

// mustWait reports whether the pending output waits for a commit: the
// loop's Apply holdUntil (durable is the last one done) or a gate.
// Loop-only.
func (c *Client) mustWait(durable uint64) bool {
	if c.holdUntil > durable {
		return true
	}
	ob := c.output
	if ob == nil || len(ob.gates) == 0 {
		return false
	}
	open := 0
	for _, g := range ob.gates {
		if g.open.Load() {
			open++
		}
	}
	if open < len(ob.gates) {
		return true
	}
	clear(ob.gates)
	ob.gates = ob.gates[:0]
	return false
}

// abandonOutput drops what c has queued and not written (a failed commit
// it waited for, resolveFailed). Loop-only.
func (c *Client) abandonOutput() {
	if c.output != nil {
		c.l.putOut(c.output)
		c.output = nil
	}
}
