package cluster

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
)

// One client id is connected once in the cluster: a node that accepted a
// CONNECT says so on mcutie.claim, and a node where that client id has a
// session ends it (broker.TakenOverElsewhere: DISCONNECT 0x8E on v5). The
// notice follows the claim of the id in the owners bucket (ownership.go),
// whose revision it carries: a node that claimed the id again since
// ignores it. A session that moved (move.go) is gone from the old node by
// the time the notice arrives; the notice ends what did not move (a clean
// start, a move that failed).

const subjectClaim = "mcutie.claim"

type claim struct {
	Node   string `json:"node"`
	Client string `json:"client"`
	// Rev is the revision of the claim in the owners bucket (0: none).
	Rev uint64 `json:"rev,omitempty"`
}

// Connected implements broker.Peers: client id connected here. It queues
// the claim (never blocks; a full queue drops it, counted).
func (n *Node) Connected(clientID string) {
	if !n.routing.Load() {
		return // not started
	}
	select {
	case n.claims <- clientID:
	default:
		n.claimsDropped.Add(1)
	}
}

// sendClaims publishes the queued claims until Stop.
func (n *Node) sendClaims() {
	defer n.wg.Done()
	for {
		select {
		case id := <-n.claims:
			raw, err := json.Marshal(claim{Node: n.o.NodeID, Client: id, Rev: n.owns(id)})
			if err == nil {
				err = n.nc.Publish(subjectClaim, raw)
			}
			if err != nil {
				n.claimsDropped.Add(1)
			}
		case <-n.stop:
			return
		}
	}
}

// onClaim ends the session another node's client took over.
func (n *Node) onClaim(msg *nats.Msg) {
	var c claim
	if err := json.Unmarshal(msg.Data, &c); err != nil || c.Client == "" || c.Node == "" {
		n.badIn.Add(1)
		return
	}
	if c.Node == n.o.NodeID {
		return
	}
	if c.Rev != 0 && n.owns(c.Client) > c.Rev {
		return // claimed here again since
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	found, err := n.b.TakenOverElsewhere(ctx, c.Client, c.Node)
	if err != nil {
		n.log.Warn("cluster: cannot end a session taken over on another node", "client", c.Client, "peer", c.Node, "err", err)
		return
	}
	if found {
		n.takenOver.Add(1)
		n.log.Info("cluster: session taken over on another node", "client", c.Client, "peer", c.Node)
	}
}
