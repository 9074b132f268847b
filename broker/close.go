package broker

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

// How a connection ends: the client's DISCONNECT, a protocol violation,
// a limit (closeFor, reasons.go), or the transport telling the broker the
// socket is gone (Closed).

// handleDisconnect processes a client's DISCONNECT.
func (c *Client) handleDisconnect(d *codec.Disconnect) error {
	s := c.s
	if c.version == codec.V5 && d.Props.Has(codec.PropSessionExpiry) {
		if s.expiry == 0 && d.Props.SessionExpiry != 0 {
			// §3.14.2.2.2: 0 at CONNECT cannot become non-zero.
			return errProtocol("Session Expiry Interval set in DISCONNECT after 0 in CONNECT", "MQTT-3.14.2-1")
		}
		s.expiry = min(d.Props.SessionExpiry, c.l.b.opts.MaxSessionExpiry)
		s.syncDurable()
	}
	// [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will; 0x04 keeps it.
	c.cleanDisconnect = d.Code != codec.DisconnectWithWill
	c.willOnClose = d.Code == codec.DisconnectWithWill
	c.close()
	return nil
}

func errProtocol(reason, spec string) error {
	return &codec.ReasonError{Code: codec.ProtocolError, Reason: reason, SpecID: spec}
}

// protocolViolation reports err to a v5 client with DISCONNECT (after a
// successful CONNACK only: MQTT-3.14.0-1) and closes the connection
// [MQTT-4.13.1-1].
func (c *Client) protocolViolation(err error) {
	re := codec.AsReasonError(err)
	code := codec.UnspecifiedError
	reason := err.Error()
	spec := ""
	if re != nil {
		code, reason, spec = re.Code, re.Reason, re.SpecID
	}
	c.closeFor(closeProtocolError, code, reason, slog.String("rule", spec), slog.String("reason", reason))
}

// logViolation logs a protocol violation naming the client and the rule.
// Lines are throttled per loop (a flood of garbage connections must not
// become a flood of log lines); the next line that passes says how many
// were suppressed.
func (c *Client) logViolation(reason, spec string) {
	c.logClose("closing connection: protocol violation", slog.String("rule", spec), slog.String("reason", reason))
}

// logClose logs why the broker closes c, throttled per loop.
func (c *Client) logClose(msg string, attrs ...slog.Attr) {
	l := c.l
	ok, suppressed := l.logs.allow(l.now)
	if !ok {
		return
	}
	id := ""
	if c.s != nil {
		id = c.s.id
	}
	attrs = append(attrs, slog.String("client", id), slog.String("remote", c.conn.RemoteAddr()))
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	l.b.opts.Logger.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// disconnect sends a v5 DISCONNECT with code (3.x: nothing) and closes.
func (c *Client) disconnect(code codec.ReasonCode, reason string) {
	if c.state == stateConnected && c.version == codec.V5 {
		d := codec.Disconnect{Code: code}
		if reason != "" && c.problemInfo {
			d.Props.Set(codec.PropReasonString)
			d.Props.ReasonString = []byte(reason)
		}
		b := d.Append(c.controlBuf(), codec.V5)
		if c.maxOut == 0 || len(b)-len(c.output.wbuf) <= int(c.maxOut) {
			c.queueControl(b)
		}
	}
	if code != codec.NormalDisconnection && code != codec.DisconnectWithWill {
		// A server-initiated close is abnormal for the client: the will
		// is published (MQTT-3.1.2-8) unless the client said DISCONNECT.
		c.willOnClose = !c.cleanDisconnect
	}
	c.close()
}

// close flushes and closes the connection; Closed follows from the transport.
func (c *Client) close() {
	if c.state == stateClosing || c.state == stateMigrating {
		return
	}
	c.state = stateClosing
	c.flush()
	_ = c.conn.Close()
}

// Closed is called by the transport once the connection is gone, on its
// loop. Loop-only.
func (c *Client) Closed() {
	l := c.l
	l.tick()
	l.removeClient(c)
	if c.claimed {
		c.claimed = false
		l.b.dir.release(l.b.dir.keyString(c.id), l.idx)
	}
	if c.output != nil {
		l.putOut(c.output) // releases the messages it references
		c.output = nil
	}
	if c.state == stateMigrating {
		l.counters.migrated++ // counted again, opened and closed, on its home loop
		return
	}
	l.counters.connectionsClosed++
	wasConnected := c.state == stateConnected || (c.state == stateClosing && c.s != nil)
	c.state = stateClosing
	c.dropRetained()
	if wasConnected && l.b.hooks.Has(hooks.Disconnected) {
		l.b.hooks.Disconnected(c.hookClient(), c.disconnectReason())
	}
	if wasConnected && l.b.opts.SysClientEvents {
		c.sysClientEvent("disconnected", func(j []byte) []byte {
			j = append(j, `,"reason":`...)
			j = strconv.AppendQuote(j, c.disconnectReason())
			j = append(j, `,"disconnected_at":`...)
			return strconv.AppendInt(j, l.now/int64(time.Millisecond), 10)
		})
	}
	if c.auth != nil {
		c.auth.call = nil // a verdict still on its way is dropped
		c.endPendingAuth()
	}
	if s := c.s; s != nil && s.c == c {
		s.detach(c, !c.cleanDisconnect || c.willOnClose)
	}
	c.s = nil
	l.flush() // a will, takeovers and store operations of the detach
}

// disconnectReason says why c's connection ended, for the Disconnected
// hooks.
func (c *Client) disconnectReason() string {
	switch {
	case c.closedFor > 0:
		return closeReasons[c.closedFor-1].label
	case c.cleanDisconnect:
		return "client_disconnected"
	case c.willOnClose:
		return "client_disconnected_with_will"
	}
	return "connection_lost"
}
