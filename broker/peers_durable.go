package broker

// DurablePeers is implemented by Peers that keep, for a node that is
// away (restarting), the interest of its sessions that persist, so that
// the QoS 1/2 messages published elsewhere for those sessions meanwhile
// are held for it instead of lost (package cluster: docs/clustering.md,
// "Hold for absent nodes").
//
// When Options.Peers implements it, DurableInterest is called in addition
// to Interest, with the same filter and delta, for the subscriptions of
// sessions that persist (session expiry > 0; 3.1.1: clean session
// false); and with ±1 for each of a session's filters when the session
// starts or stops persisting (a resumed session's CONNECT, a v5
// DISCONNECT's expiry). So the durable count of a filter never exceeds
// its Interest count. Same contract as Interest: any goroutine, must not
// block.
type DurablePeers interface {
	DurableInterest(filter string, delta int)
}

// peerDurable tells Options.Peers, when it keeps durable interest, that
// a persisting session added (+1) or removed (-1) filter.
func (b *Broker) peerDurable(filter string, delta int) {
	if dp, ok := b.opts.Peers.(DurablePeers); ok {
		dp.DurableInterest(filter, delta)
	}
}

// syncDurable re-counts s's filters as durable or not when s.expiry
// changed whether s persists. Loop-only; call after setting s.expiry.
func (s *Session) syncDurable() {
	x := s.extras
	if x == nil || s.l.b.opts.Peers == nil {
		return
	}
	d := s.expiry != 0
	if len(x.subs) == 0 || d == x.peerDurable {
		x.peerDurable = d
		return
	}
	x.peerDurable = d
	delta := -1
	if d {
		delta = 1
	}
	for f := range x.subs {
		s.l.b.peerDurable(f, delta)
	}
}
