package broker

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/router"
)

// The management half of the embedding API (package admin serves it as
// JSON; see docs/embedding.md): list and inspect sessions and their
// subscriptions, disconnect a client, discard a session, list and delete
// retained messages. Sessions are owned by their loops, so every query is
// a function posted to each loop's inbox (as StatsNow does) that copies
// at most one page out of what the loop owns: a loop never hands out its
// maps, and a query costs that loop one pass over its sessions (no
// allocation per session beyond the page). Retained messages are
// broker-wide and read under their index's read lock.

// MaxQueryWindow bounds Offset+Limit of a query: a loop keeps at most
// this many candidates while it walks its sessions. Deeper pages are read
// with a cursor (After), which costs the same whatever the depth.
const MaxQueryWindow = 10000

// Errors of the management API.
var (
	// ErrNotServing: the broker's loops are not bound to a transport
	// (not started yet, or stopped), so nothing can be asked of them.
	ErrNotServing = errors.New("broker: not serving (event loops not running)")
	// ErrQueryWindow: Offset+Limit is beyond MaxQueryWindow.
	ErrQueryWindow = errors.New("broker: offset + limit beyond the query window: use the cursor (After) for deeper pages")
)

// Query selects one page of a listing, in ascending key order (client id,
// then filter; retained: topic).
type Query struct {
	// Match keeps the items whose client id, user name or address
	// (sessions), client id or filter (subscriptions) or topic
	// (retained) contains it; empty: all. Case-sensitive.
	Match string
	// State keeps only "connected" or "offline" sessions; empty: both.
	State string
	// After is a cursor: only keys after it (the Next of the previous
	// page).
	After string
	// Offset skips that many items after After; Limit is the page size
	// (at least 1). Offset+Limit is at most MaxQueryWindow.
	Offset, Limit int
}

func (q *Query) check() error {
	if q.Limit < 1 {
		q.Limit = 1
	}
	if q.Offset < 0 {
		q.Offset = 0
	}
	if q.Offset+q.Limit > MaxQueryWindow {
		return ErrQueryWindow
	}
	return nil
}

// SessionStatus describes one session, connected or offline.
type SessionStatus struct {
	ClientID  string
	Connected bool
	// Protocol is the MQTT version: "3.1", "3.1.1" or "5.0".
	Protocol string
	// Address is the connection's remote address ("" while offline).
	Address string
	// Username is who the connection authenticated as: known when an
	// Authenticator, an Authorizer, hooks, $SYS client events or
	// Options.KeepIdentity make the broker keep it ("" otherwise).
	Username string
	// KeepAlive is the effective keep-alive, seconds (0 while offline).
	KeepAlive uint16
	// ExpiryInterval is the session expiry interval, seconds
	// (4294967295: never).
	ExpiryInterval    uint32
	Subscriptions     int
	Inflight, Queued  int
	ConnectedAt       time.Time // zero while offline
	DisconnectedAt    time.Time // zero while connected
	Loop              int
	SubscriptionsList []SubscriptionInfo // Session only; nil in lists
}

// SubscriptionInfo is one subscription of a session.
type SubscriptionInfo struct {
	ClientID string
	// Filter as subscribed, $share/<group>/ included.
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	Identifier        uint32 // v5 subscription identifier; 0: none
}

// SessionPage is one page of Sessions.
type SessionPage struct {
	Items []SessionStatus
	// Total counts the sessions matching the query after After (every
	// page of them).
	Total int
	// Next is the After of the next page; "" on the last.
	Next string
}

// SubscriptionPage is one page of Subscriptions.
type SubscriptionPage struct {
	Items []SubscriptionInfo
	Total int
	Next  string
}

// RetainedInfo describes one retained message.
type RetainedInfo struct {
	Topic   string
	Size    int // payload bytes
	QoS     byte
	Created time.Time
	// ExpireAt is when the message expires (v5 Message Expiry); zero:
	// never.
	ExpireAt time.Time
	// Message is the payload and properties (RetainedMessage only).
	Message *Publication
}

// RetainedPage is one page of RetainedMessages.
type RetainedPage struct {
	Items []RetainedInfo
	Total int
	Next  string
}

// onLoops runs fn on every loop (on its event loop, through its inbox)
// and waits for all of them, or for ctx. fn(l, i) must write only to
// what belongs to index i: after ctx ends the caller stops reading, and
// a late fn may still run. Safe for concurrent use; not on a loop.
func (b *Broker) onLoops(ctx context.Context, fn func(l *Loop, i int)) error {
	return b.onLoopsAsync(ctx, func(l *Loop, i int, done func()) {
		fn(l, i)
		done()
	})
}

// onLoopsAsync is onLoops for work that may take several passes of a
// loop (walkSessions): fn calls done, on the loop, once it has finished.
func (b *Broker) onLoopsAsync(ctx context.Context, fn func(l *Loop, i int, done func())) error {
	for _, l := range b.loops {
		if !l.bound() {
			return ErrNotServing
		}
	}
	var wg sync.WaitGroup
	for i, l := range b.loops {
		i, l := i, l
		wg.Add(1)
		run := func() {
			l.tick()
			fn(l, i, wg.Done)
			l.flush()
		}
		if err := l.runSoon(run); err != nil {
			return ErrNotServing
		}
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runSoon queues fn to run on l after what its inbox already holds (or,
// with the inbox full, through its executor). Safe from any goroutine,
// l's own included: it never waits.
func (l *Loop) runSoon(fn func()) error {
	if l.post(inboxItem{kind: itemFunc, fn: fn}, false) {
		return nil
	}
	return l.exec(fn)
}

// walkChunk is how many sessions walkSessions visits in one pass of a
// loop: at the measured cost (docs/admin.md) well under a millisecond,
// the longest a management query holds a loop from its connections.
const walkChunk = 2048

// walkObserved, when set (tests only, before any broker runs), is told
// how long each chunk of a walk held its loop.
var walkObserved func(time.Duration)

// walkSessions calls visit for each of l's sessions, walkChunk of them
// per pass of the loop: after each chunk the rest goes to the back of
// the loop's inbox, so the loop serves its connections in between and a
// walk over any number of sessions holds it no longer than one chunk.
// Sessions added or removed meanwhile may or may not be visited (Go's
// map iteration rules), none twice. finish runs on the loop after the
// last chunk. Loop-only.
func (l *Loop) walkSessions(visit func(*Session), finish func()) {
	next, stop := iter.Pull(func(yield func([]*Session) bool) {
		buf := make([]*Session, 0, walkChunk)
		for _, s := range l.sessions {
			if buf = append(buf, s); len(buf) == walkChunk {
				if !yield(buf) {
					return
				}
				buf = buf[:0]
			}
		}
		if len(buf) > 0 {
			yield(buf)
		}
	})
	var step func()
	step = func() {
		var t0 time.Time
		if walkObserved != nil {
			t0 = time.Now()
		}
		l.tick()
		chunk, ok := next()
		for _, s := range chunk {
			visit(s)
		}
		if walkObserved != nil {
			walkObserved(time.Since(t0))
		}
		if ok {
			if err := l.runSoon(step); err == nil {
				return
			}
		}
		stop()
		finish()
		l.flush()
	}
	step()
}

// versionName names an MQTT protocol level.
func versionName(v codec.Version) string {
	switch v {
	case codec.V31:
		return "3.1"
	case codec.V311:
		return "3.1.1"
	case codec.V5:
		return "5.0"
	}
	return ""
}

// connectedSince is when s's connection was accepted (its CONNACK):
// Session.discAt holds it negated while connected. Loop-only.
func (s *Session) connectedSince() int64 {
	if s.discAt < 0 {
		return -s.discAt
	}
	return 0
}

// online reports whether s has a connection that completed its CONNECT.
func (s *Session) online() bool { return s.c != nil && s.c.state == stateConnected }

// username is who s's connection authenticated as, when the broker kept it.
func (s *Session) username() string {
	if s.extras != nil && s.extras.identKnown {
		return s.extras.ident.Username
	}
	return ""
}

// info describes s (withSubs: its subscriptions too). Loop-only.
func (s *Session) info(withSubs bool) SessionStatus {
	si := SessionStatus{
		ClientID: s.id, Protocol: versionName(s.version), Username: s.username(),
		ExpiryInterval: s.expiry, Subscriptions: len(s.subscriptions()),
		Inflight: s.inflightLen(), Queued: s.queuedLen(), Loop: s.l.idx,
	}
	if s.online() {
		si.Connected = true
		si.Address = s.c.conn.RemoteAddr()
		si.KeepAlive = s.c.keepAlive
		if at := s.connectedSince(); at > 0 {
			si.ConnectedAt = time.Unix(0, at)
		}
	} else if s.discAt > 0 {
		si.DisconnectedAt = time.Unix(0, s.discAt)
	}
	if withSubs {
		subs := s.subscriptions()
		si.SubscriptionsList = make([]SubscriptionInfo, 0, len(subs))
		for f, o := range subs {
			si.SubscriptionsList = append(si.SubscriptionsList, subInfo(s.id, f, o))
		}
		sort.Slice(si.SubscriptionsList, func(i, j int) bool {
			return si.SubscriptionsList[i].Filter < si.SubscriptionsList[j].Filter
		})
	}
	return si
}

func subInfo(id, filter string, o router.SubOptions) SubscriptionInfo {
	return SubscriptionInfo{ClientID: id, Filter: filter, QoS: o.QoS, NoLocal: o.NoLocal,
		RetainAsPublished: o.RetainAsPublished, RetainHandling: o.RetainHandling, Identifier: o.ID}
}

// sessionMatches reports whether s passes q's Match and State. The
// address is formatted only when Match is set. Loop-only.
func (s *Session) matches(q *Query) bool {
	switch q.State {
	case "connected":
		if !s.online() {
			return false
		}
	case "offline":
		if s.online() {
			return false
		}
	}
	if q.Match == "" || strings.Contains(s.id, q.Match) {
		return true
	}
	if u := s.username(); u != "" && strings.Contains(u, q.Match) {
		return true
	}
	// The address is formatted only for a match that could be part of
	// one (a transport may allocate for it).
	return s.online() && addressLike(q.Match) && strings.Contains(s.c.conn.RemoteAddr(), q.Match)
}

// addressLike reports whether m could be part of "host:port" with an IP
// host.
func addressLike(m string) bool {
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '.' || c == ':' || c == '[' || c == ']' || c == '%') {
			return false
		}
	}
	return true
}

// Sessions returns one page of the sessions, connected and offline
// persistent ones (server-side subscriptions included), ordered by client
// id. Each loop keeps the Offset+Limit smallest matching ids while it
// walks its sessions (a bounded heap: nothing else is copied), and the
// loops' candidates are merged. For the first page (Offset 0) the loops
// describe their candidates at once; deeper, a second round asks them
// for the page's sessions only, so a deep page copies no more than a
// first one (a session gone between the rounds is left out). Total counts
// every match after After. Safe for concurrent use; not on a loop.
// Errors: ErrQueryWindow, ErrNotServing, ctx's.
func (b *Broker) Sessions(ctx context.Context, q Query) (SessionPage, error) {
	if err := q.check(); err != nil {
		return SessionPage{}, err
	}
	k := q.Offset + q.Limit
	type part struct {
		ids   []string
		items []SessionStatus
		total int
	}
	describe := q.Offset == 0
	parts := make([]part, len(b.loops))
	err := b.onLoopsAsync(ctx, func(l *Loop, i int, done func()) {
		h := smallest[*Session]{k: k, less: func(a, b *Session) bool { return a.id < b.id }}
		n := 0
		l.walkSessions(func(s *Session) {
			if q.After != "" && s.id <= q.After || !s.matches(&q) {
				return
			}
			n++
			h.offer(s)
		}, func() {
			p := part{total: n}
			for _, s := range h.sorted() {
				if l.sessions[s.id] != s {
					continue // ended during the walk
				}
				if describe {
					p.items = append(p.items, s.info(false))
				} else {
					p.ids = append(p.ids, s.id)
				}
			}
			parts[i] = p
			done()
		})
	})
	if err != nil {
		return SessionPage{}, err
	}
	var pg SessionPage
	if describe {
		var all []SessionStatus
		for _, p := range parts {
			all = append(all, p.items...)
			pg.Total += p.total
		}
		sort.Slice(all, func(i, j int) bool { return all[i].ClientID < all[j].ClientID })
		pg.Items = window(all, q.Offset, q.Limit)
	} else {
		var ids []string
		for _, p := range parts {
			ids = append(ids, p.ids...)
			pg.Total += p.total
		}
		sort.Strings(ids)
		page := window(ids, q.Offset, q.Limit)
		found := make([][]SessionStatus, len(b.loops))
		if len(page) > 0 {
			err = b.onLoops(ctx, func(l *Loop, i int) {
				for _, id := range page {
					if s := l.sessions[id]; s != nil {
						found[i] = append(found[i], s.info(false))
					}
				}
			})
			if err != nil {
				return SessionPage{}, err
			}
		}
		for _, f := range found {
			pg.Items = append(pg.Items, f...)
		}
		sort.Slice(pg.Items, func(i, j int) bool { return pg.Items[i].ClientID < pg.Items[j].ClientID })
		if len(page) > 0 && q.Offset+len(page) < pg.Total {
			pg.Next = page[len(page)-1]
		}
		return pg, nil
	}
	if q.Offset+len(pg.Items) < pg.Total && len(pg.Items) > 0 {
		pg.Next = pg.Items[len(pg.Items)-1].ClientID
	}
	return pg, nil
}

// Session returns the session of client id id with its subscriptions;
// ok is false when there is none. Safe for concurrent use; not on a loop.
func (b *Broker) Session(ctx context.Context, id string) (si SessionStatus, ok bool, err error) {
	found := make([]*SessionStatus, len(b.loops))
	err = b.onLoops(ctx, func(l *Loop, i int) {
		if s := l.sessions[id]; s != nil {
			x := s.info(true)
			found[i] = &x
		}
	})
	if err != nil {
		return si, false, err
	}
	for _, f := range found {
		if f != nil {
			return *f, true, nil
		}
	}
	return si, false, nil
}

// DisconnectClient closes the connection of client id id: a v5 client is
// sent DISCONNECT 0x98 Administrative action first (MQTT-3.14); its will
// is published as for any close the client did not ask for. With
// discard, the session ends too (subscriptions and queued messages
// dropped, the stored session deleted), whether it was connected or
// offline. It reports whether the id had a session. Safe for concurrent
// use; not on a loop.
func (b *Broker) DisconnectClient(ctx context.Context, id string, discard bool) (found bool, err error) {
	hit := make([]bool, len(b.loops))
	err = b.onLoops(ctx, func(l *Loop, i int) {
		s := l.sessions[id]
		if s == nil {
			return
		}
		hit[i] = true
		if c := s.c; c != nil {
			if discard {
				// [MQTT-3.1.2-23] a session with expiry 0 ends with its
				// connection: the close (Client.Closed, detach) ends it.
				s.expiry = 0
			}
			c.disconnect(codec.AdministrativeAction, "disconnected by an administrator")
			return
		}
		if discard {
			s.sessionEnding(hooks.SessionCleaned)
			s.end(false)
		}
	})
	for _, h := range hit {
		found = found || h
	}
	return found, err
}

// Subscriptions returns one page of the sessions' subscriptions, ordered
// by client id then filter; Match keeps those whose client id or filter
// contains it. After is a cursor made by a previous page's Next. Bounded
// as Sessions is. Safe for concurrent use; not on a loop.
func (b *Broker) Subscriptions(ctx context.Context, q Query) (SubscriptionPage, error) {
	if err := q.check(); err != nil {
		return SubscriptionPage{}, err
	}
	k := q.Offset + q.Limit
	type part struct {
		items []SubscriptionInfo
		total int
	}
	afterID, afterFilter, _ := strings.Cut(q.After, "\x00")
	parts := make([]part, len(b.loops))
	err := b.onLoopsAsync(ctx, func(l *Loop, i int, done func()) {
		h := smallest[SubscriptionInfo]{k: k, less: subLess}
		n := 0
		l.walkSessions(func(s *Session) {
			id := s.id
			if q.After != "" && id < afterID {
				return // every subscription of id is before the cursor
			}
			idMatch := q.Match == "" || strings.Contains(id, q.Match)
			for f, o := range s.subscriptions() {
				if !idMatch && !strings.Contains(f, q.Match) {
					continue
				}
				if q.After != "" && id == afterID && f <= afterFilter {
					continue
				}
				n++
				if h.full() && !subLess(SubscriptionInfo{ClientID: id, Filter: f}, h.top()) {
					continue // not among the k smallest
				}
				h.offer(subInfo(id, f, o))
			}
		}, func() {
			parts[i] = part{items: h.sorted(), total: n}
			done()
		})
	})
	if err != nil {
		return SubscriptionPage{}, err
	}
	var all []SubscriptionInfo
	var pg SubscriptionPage
	for _, p := range parts {
		all = append(all, p.items...)
		pg.Total += p.total
	}
	sort.Slice(all, func(i, j int) bool { return subLess(all[i], all[j]) })
	pg.Items = window(all, q.Offset, q.Limit)
	if q.Offset+len(pg.Items) < pg.Total && len(pg.Items) > 0 {
		last := pg.Items[len(pg.Items)-1]
		pg.Next = last.ClientID + "\x00" + last.Filter
	}
	return pg, nil
}

// subLess orders subscriptions by client id, then filter.
func subLess(a, b SubscriptionInfo) bool {
	if a.ClientID != b.ClientID {
		return a.ClientID < b.ClientID
	}
	return a.Filter < b.Filter
}

// RetainedMessages returns one page of the retained messages, ordered by
// topic; Match keeps the topics that contain it. It walks the retained
// index under its read lock (retained PUBLISHes wait meanwhile) keeping
// the Offset+Limit smallest topics. Safe for concurrent use.
func (b *Broker) RetainedMessages(q Query) (RetainedPage, error) {
	if err := q.check(); err != nil {
		return RetainedPage{}, err
	}
	type cand struct {
		topic string
		m     *Message
	}
	h := smallest[cand]{k: q.Offset + q.Limit, less: func(a, b cand) bool { return a.topic < b.topic }}
	total := 0
	match := []byte(q.Match)
	b.retained.Range(func(topic []byte, m *Message) bool {
		if q.After != "" && string(topic) <= q.After {
			return true
		}
		if len(match) > 0 && !bytes.Contains(topic, match) {
			return true
		}
		total++
		if h.full() && string(topic) >= h.top().topic {
			return true
		}
		h.offer(cand{topic: string(topic), m: m})
		return true
	})
	var pg RetainedPage
	pg.Total = total
	for _, c := range window(h.sorted(), q.Offset, q.Limit) {
		pg.Items = append(pg.Items, retainedInfo(c.topic, c.m, false))
	}
	if q.Offset+len(pg.Items) < pg.Total && len(pg.Items) > 0 {
		pg.Next = pg.Items[len(pg.Items)-1].Topic
	}
	return pg, nil
}

// RetainedMessage returns the retained message of topic, with its payload
// and properties. Safe for concurrent use.
func (b *Broker) RetainedMessage(topic string) (RetainedInfo, bool) {
	m, ok := b.retained.Get([]byte(topic))
	if !ok {
		return RetainedInfo{}, false
	}
	return retainedInfo(topic, m, true), true
}

// retainedInfo describes m. A retained message is pinned (never pooled):
// reading it without a reference is safe.
func retainedInfo(topic string, m *Message, full bool) RetainedInfo {
	ri := RetainedInfo{Topic: topic, Size: len(m.Payload), QoS: m.QoS, Created: time.Unix(0, m.Created)}
	if m.ExpireAt > 0 {
		ri.ExpireAt = time.Unix(0, m.ExpireAt)
	}
	if full {
		p := &Publication{Topic: topic, Payload: append([]byte{}, m.Payload...), QoS: m.QoS, Retain: true}
		if pp := m.Props; pp != nil {
			if pp.Has(codec.PropPayloadFormat) {
				p.PayloadFormat = pp.PayloadFormat
			}
			p.ContentType, p.ResponseTopic = string(pp.ContentType), string(pp.ResponseTopic)
			if pp.Has(codec.PropCorrelationData) {
				p.CorrelationData = append([]byte{}, pp.CorrelationData...)
			}
			for _, u := range pp.User {
				p.UserProperties = append(p.UserProperties, UserProperty{Key: string(u.Key), Value: string(u.Value)})
			}
		}
		ri.Message = p
	}
	return ri
}

// DeleteRetained removes the retained message of topic, as a retained
// PUBLISH with an empty payload would (the store forgets it, the
// RetainedChanged hooks are told), but sends nothing to subscribers. It
// reports whether there was one. Safe for concurrent use; not on a loop.
func (b *Broker) DeleteRetained(ctx context.Context, topic string) (bool, error) {
	if err := codec.ValidateTopicName([]byte(topic)); err != nil {
		return false, err
	}
	l := b.loops[0]
	if !l.bound() {
		return false, ErrNotServing
	}
	done := make(chan bool, 1)
	run := func() {
		l.tick()
		_, ok := b.retained.Get([]byte(topic))
		if ok {
			m := newMessage(&codec.Publish{Topic: []byte(topic), Retain: true}, nil, l.now)
			l.setRetained(m)
			m.release()
			l.flush()
		}
		done <- ok
	}
	if !l.post(inboxItem{kind: itemFunc, fn: run}, true) {
		if err := l.exec(run); err != nil {
			return false, ErrNotServing
		}
	}
	select {
	case ok := <-done:
		return ok, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// window returns items[off:off+n], clipped.
func window[T any](items []T, off, n int) []T {
	if off >= len(items) {
		return nil
	}
	return items[off:min(off+n, len(items))]
}

// smallest keeps the k smallest items offered to it (by less): a max
// heap, so a walk over n items costs O(n log k) and holds k.
type smallest[T any] struct {
	k     int
	less  func(a, b T) bool
	items []T
}

func (h *smallest[T]) full() bool { return len(h.items) >= h.k }
func (h *smallest[T]) top() T     { return h.items[0] }

func (h *smallest[T]) offer(v T) {
	if len(h.items) < h.k {
		h.items = append(h.items, v)
		h.up(len(h.items) - 1)
		return
	}
	if h.k == 0 || !h.less(v, h.items[0]) {
		return
	}
	h.items[0] = v
	h.down(0)
}

func (h *smallest[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[p], h.items[i]) {
			return
		}
		h.items[p], h.items[i] = h.items[i], h.items[p]
		i = p
	}
}

func (h *smallest[T]) down(i int) {
	n := len(h.items)
	for {
		big, l, r := i, 2*i+1, 2*i+2
		if l < n && h.less(h.items[big], h.items[l]) {
			big = l
		}
		if r < n && h.less(h.items[big], h.items[r]) {
			big = r
		}
		if big == i {
			return
		}
		h.items[i], h.items[big] = h.items[big], h.items[i]
		i = big
	}
}

// sorted returns the kept items in ascending order.
func (h *smallest[T]) sorted() []T {
	sort.Slice(h.items, func(i, j int) bool { return h.less(h.items[i], h.items[j]) })
	return h.items
}
