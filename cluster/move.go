package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/mcutie/mcutie/broker"
	"github.com/nats-io/nats.go"
)

// Moving a session (docs/clustering.md, "Session ownership"). The node
// that claimed a client id from another (C, from A) asks A for the
// session on mcutie.take.<A> (NATS request/reply, Options.MoveTimeout).
// A disconnects the old connection (0x8E on v5), takes the session out of
// its memory and answers with it (broker.TakeSession: a store transfer,
// at most Options.MaxSessionBytes); C stores it, then tells A on
// mcutie.moved.<A>, and A deletes its stored copy only then. If A does not
// answer in time (dead, partitioned), C starts the client clean; A's copy
// goes when A sees the key is not its own (watchOwners).
//
//	take request:  version (1) | uvarint claim revision | client id
//	take reply:    version (1) | status (1) | transfer (status takeOK)
//	moved notice:  version (1) | stored (1: 1, 0: not) | uvarint revision | client id

const (
	moveVersion = 1

	takeOK       = 0 // the session follows
	takeNone     = 1 // no session here
	takeTooLarge = 2 // above Options.MaxSessionBytes: discarded, not sent
	takeStale    = 3 // this node claimed the id again after the request's claim
	takeFailed   = 4 // the session could not be taken (the broker is stopping)
)

func subjectTake(node string) string  { return "mcutie.take." + node }
func subjectMoved(node string) string { return "mcutie.moved." + node }

var errMove = errors.New("cluster: malformed session move message")

func encodeTake(rev uint64, id string) []byte {
	b := binary.AppendUvarint([]byte{moveVersion}, rev)
	return append(b, id...)
}

func decodeTake(b []byte) (rev uint64, id string, err error) {
	if len(b) < 2 || b[0] != moveVersion {
		return 0, "", errMove
	}
	rev, w := binary.Uvarint(b[1:])
	if w <= 0 || len(b) == 1+w {
		return 0, "", errMove
	}
	return rev, string(b[1+w:]), nil
}

func encodeMoved(stored bool, rev uint64, id string) []byte {
	s := byte(0)
	if stored {
		s = 1
	}
	b := binary.AppendUvarint([]byte{moveVersion, s}, rev)
	return append(b, id...)
}

func decodeMoved(b []byte) (stored bool, rev uint64, id string, err error) {
	if len(b) < 3 || b[0] != moveVersion || b[1] > 1 {
		return false, 0, "", errMove
	}
	rev, w := binary.Uvarint(b[2:])
	if w <= 0 || len(b) == 2+w {
		return false, 0, "", errMove
	}
	return b[1] == 1, rev, string(b[2+w:]), nil
}

// fetchSession asks node (the previous owner) for id's session, claimed
// here at revision rev. nil: none came (none there, too large, or node
// unreachable within Options.MoveTimeout: the client starts clean).
func (n *Node) fetchSession(node, id string, rev uint64) ([]byte, func(error)) {
	msg, err := n.nc.Request(subjectTake(node), encodeTake(rev, id), n.o.MoveTimeout)
	if err != nil {
		n.own.moveFailed.Add(1)
		n.log.Warn("cluster: the previous owner did not hand the session over; the client starts clean", "client", id, "peer", node, "err", err)
		return nil, nil
	}
	b := msg.Data
	if len(b) < 2 || b[0] != moveVersion {
		n.badIn.Add(1)
		return nil, nil
	}
	switch b[1] {
	case takeOK:
	case takeTooLarge:
		n.own.moveRefused.Add(1)
		n.log.Warn("cluster: the session was too large to move (--cluster-max-session-bytes on the previous owner); the client starts clean", "client", id, "peer", node)
		return nil, nil
	case takeNone, takeStale:
		return nil, nil
	default:
		n.own.moveFailed.Add(1)
		return nil, nil
	}
	n.own.movedIn.Add(1)
	data := b[2:]
	return data, func(err error) {
		if perr := n.nc.Publish(subjectMoved(node), encodeMoved(err == nil, rev, id)); perr != nil {
			n.log.Warn("cluster: cannot tell the previous owner the session is stored", "client", id, "peer", node, "err", perr)
		}
	}
}

// onTake answers a node that claimed a client id this node had: the
// session, taken out of this node (broker.TakeSession).
func (n *Node) onTake(msg *nats.Msg) {
	rev, id, err := decodeTake(msg.Data)
	if err != nil {
		n.badIn.Add(1)
		return
	}
	reply := func(status byte, data []byte) {
		_ = msg.Respond(append([]byte{moveVersion, status}, data...))
	}
	if mine := n.owns(id); mine > rev {
		reply(takeStale, nil) // claimed here again since: the session stays
		return
	}
	n.disown(id, rev)
	ctx, cancel := context.WithTimeout(context.Background(), n.o.MoveTimeout)
	defer cancel()
	data, err := n.b.TakeSession(ctx, id, n.o.MaxSessionBytes)
	switch {
	case errors.Is(err, broker.ErrNoSession):
		reply(takeNone, nil)
	case errors.Is(err, broker.ErrTooLarge):
		n.own.moveRefused.Add(1)
		n.log.Warn("cluster: session too large to move to the node that claimed it: discarded", "client", id, "err", err)
		reply(takeTooLarge, nil)
	case err != nil:
		n.own.moveFailed.Add(1)
		reply(takeFailed, nil)
	default:
		n.own.movedOut.Add(1)
		reply(takeOK, data)
	}
}

// onMoved: the new owner stored (or not) a session this node handed over.
func (n *Node) onMoved(msg *nats.Msg) {
	stored, _, id, err := decodeMoved(msg.Data)
	if err != nil {
		n.badIn.Add(1)
		return
	}
	var e error
	if !stored {
		e = errors.New("not stored by the new owner")
	}
	n.b.ConfirmMoved(id, e)
}

// moveTimeoutDefault bounds how long a claiming node waits for the
// previous owner's session (Options.MoveTimeout).
const moveTimeoutDefault = 2 * time.Second

var _ broker.SessionClaimer = (*Node)(nil)
