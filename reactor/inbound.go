package reactor

import (
	"time"

	"github.com/mcutie/mcutie/broker"
)

// inbound is what a connection received and the broker has not consumed
// yet, as far as the reactor keeps it, and the packet-timeout clock. Both
// transports feed through it, so the rules live here once:
//
//   - Feed consumes whole packets; the unconsumed tail (the start of a
//     packet) is kept for the next feed: in carry, or left in gnet's
//     inbound buffer, which outlives the callback.
//   - Bytes carried (a tail kept here, or the bytes a move brought) are fed
//     first, with what arrived after them appended.
//   - A move (FeedMigrate) takes the unconsumed bytes along, copied.
//   - The packet timeout runs while a partial packet is pending, from the
//     first of its bytes to arrive or the moment the packets before it
//     were consumed.
//
// Loop-only (the connection's loop). A plain TCP connection on its first
// loop has none (connState.x is nil): feed takes a nil *inbound as one
// that carries nothing, so that path neither copies nor allocates.
type inbound struct {
	carry     []byte // received, not consumed: fed before what arrives next
	pendSince int64  // unix ns: when the partial packet pending began arriving; 0 = none
}

// feed hands the carried bytes, then b, to cl, and keeps the rest for the
// next feed. keep says whether b outlives the call: if not (the goroutine
// transport reuses its read buffer), the unconsumed tail of b is copied
// into carry; if so (gnet's inbound buffer), it is left where it is and
// fed again next time. used is how many bytes of b the caller drops from
// its buffer: those consumed, or taken into carry.
//
// On FeedMigrate moving holds the unconsumed bytes, a copy that goes with
// the connection to the loop that owns its client id. On FeedClose and
// FeedMigrate the carry is dropped and the clock stopped. Loop-only.
func (in *inbound) feed(cl *broker.Client, b []byte, keep bool) (res broker.FeedResult, used int, moving []byte) {
	data := b
	fromCarry := in != nil && len(in.carry) > 0
	if fromCarry {
		// This path copies; gnet connections take it only for the first
		// packets of a moved connection.
		in.carry = append(in.carry, b...)
		data = in.carry
		used = len(b)
	}
	n, res := cl.Feed(data)
	switch res {
	case broker.FeedClose:
		in.drop()
		return res, used, nil
	case broker.FeedMigrate:
		moving = append([]byte(nil), data[n:]...)
		in.drop()
		return res, used, moving
	}
	rest := data[n:]
	switch {
	case fromCarry && len(rest) == 0 && !keep:
		in.carry = nil // a moved gnet connection is done with carrying
	case fromCarry:
		in.carry = in.carry[:copy(in.carry, rest)]
	case keep:
		if in == nil {
			panic("BUG: reactor: inbound.feed keeping bytes without an inbound")
		}
		// A partial packet: codec.Frame has already refused a packet that
		// claims more than the maximum packet size, so this is bounded.
		in.carry = append(in.carry[:0], rest...)
		used = len(b)
	default:
		used = n // the tail stays in the caller's buffer
	}
	return res, used, nil
}

// drop forgets the carried bytes and stops the clock (the connection is
// closing or moving). Loop-only.
func (in *inbound) drop() {
	if in != nil {
		in.carry = nil
		in.pendSince = 0
	}
}

// pendingPacket runs the packet timeout (Options.PacketTimeout) after bytes
// were handled: before and after count the bytes received and not
// consumed (kept here or by the transport) before and after. The clock
// runs while some remain, the start of a packet, from when that packet
// began: the first of its bytes to arrive, or the moment the packets
// before it were consumed (after < before). It reports whether a partial
// packet is pending, for the caller to watch the connection. Loop-only.
func (in *inbound) pendingPacket(before, after int) bool {
	if after == 0 {
		in.pendSince = 0
		return false
	}
	if in.pendSince == 0 || after < before {
		in.pendSince = time.Now().UnixNano()
	}
	return true
}

// overdue checks the packet timeout pt at a sweep (now, unix ns). watch
// reports that a partial packet is still pending within pt; late, that it
// has been arriving for longer, which stops the clock: the caller closes
// the connection (Server.packetTimedOut). Loop-only.
func (in *inbound) overdue(now int64, pt time.Duration) (watch, late bool) {
	if in.pendSince == 0 {
		return false, false
	}
	if pt > 0 && now-in.pendSince > int64(pt) {
		in.pendSince = 0
		return false, true
	}
	return true, false
}

// packetTimedOut counts and logs a connection closed by the packet
// timeout; buffered is what it had received of the packet.
func (s *Server) packetTimedOut(remote string, buffered int) {
	s.ctr.packetTimeouts.Add(1)
	s.log.Info("closing connection: packet not complete within --packet-timeout", "remote", remote, "timeout", s.packetTimeout(), "buffered", buffered)
}
