package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// The conformance suite: every test here runs against Memory and Badger.

type backend struct {
	name   string
	open   func(t *testing.T) Store
	reopen func(t *testing.T, s Store) Store // close s, open its data again
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTestBadger(t testing.TB, o BadgerOptions) *Badger {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	b, err := OpenBadger(o)
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func backends() []backend {
	return []backend{
		{
			name: "memory",
			open: func(t *testing.T) Store { return NewMemory() },
			reopen: func(t *testing.T, s Store) Store {
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return s.(*Memory).Reopen()
			},
		},
		{
			name: "badger",
			open: func(t *testing.T) Store { return openTestBadger(t, BadgerOptions{}) },
			reopen: func(t *testing.T, s Store) Store {
				b := s.(*Badger)
				if err := b.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return openTestBadger(t, b.opt)
			},
		},
	}
}

// moreBackends are added by other test files (redis_test.go).
var moreBackends []backend

func forEachBackend(t *testing.T, f func(t *testing.T, be backend)) {
	for _, be := range append(backends(), moreBackends...) {
		t.Run(be.name, func(t *testing.T) { f(t, be) })
	}
}

// apply applies ops as one unit and waits for done.
func apply(t testing.TB, s Store, ops ...Op) {
	t.Helper()
	ch := make(chan error, 1)
	if err := s.Apply(ops, func(err error) { ch <- err }); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("done: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("done not called within 10s")
	}
}

type dump struct {
	Sessions []Session
	Subs     []Subscription
	Out      []Outbound
	In       []InboundQoS2
	Retained []Message
	Wills    []Will
	Order    string // record kinds in visit order
}

func load(t testing.TB, s Store) dump {
	t.Helper()
	var d dump
	var order strings.Builder
	err := s.Load(Visitor{
		Session:  func(x Session) { d.Sessions = append(d.Sessions, x); order.WriteByte('s') },
		Sub:      func(x Subscription) { d.Subs = append(d.Subs, x); order.WriteByte('u') },
		Outbound: func(x Outbound) { d.Out = append(d.Out, x); order.WriteByte('i') },
		Inbound:  func(x InboundQoS2) { d.In = append(d.In, x); order.WriteByte('r') },
		Retained: func(x Message) { d.Retained = append(d.Retained, x); order.WriteByte('t') },
		Will:     func(x Will) { d.Wills = append(d.Wills, x); order.WriteByte('w') },
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	d.Order = order.String()
	return d
}

func equal(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want)
		if len(g) > 2000 {
			g = g[:2000] + "…"
		}
		if len(w) > 2000 {
			w = w[:2000] + "…"
		}
		t.Fatalf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func msg(topic, payload string) Message {
	return Message{Topic: []byte(topic), Payload: []byte(payload), QoS: 1, Created: 1700000000e9}
}

// fixture is one client's worth of every record type, plus retained.
func fixture(cid string) []Op {
	m := msg("a/"+cid, "hello "+cid)
	m.Props = []byte{0x01, 0x01} // payload format indicator
	return []Op{
		{Session: &Session{ClientID: cid, Version: 5, ExpiryInterval: 3600, QoS2Mark: 1<<40 + 7}},
		{Sub: &Subscription{ClientID: cid, Filter: "a/#", QoS: 1, NoLocal: true, RetainHandling: 2, ID: 7}},
		{Sub: &Subscription{ClientID: cid, Filter: "b/+", QoS: 2, RetainAsPublished: true}},
		{Outbound: &Outbound{ClientID: cid, Seq: 2, PacketID: 11, State: OutboundSent, Msg: m, Origin: "publisher-1", OriginMark: 1<<40 + 5}},
		{Outbound: &Outbound{ClientID: cid, Seq: 1, Msg: m}},
		{Outbound: &Outbound{ClientID: cid, Seq: 3, PacketID: 12, State: OutboundReleased}},
		{Inbound: &InboundQoS2{ClientID: cid, PacketID: 9}},
		{Will: &Will{ClientID: cid, PublishAt: 1700000005e9, Msg: Message{Topic: []byte("will/" + cid), Payload: []byte("bye"), QoS: 2, Retain: true}}},
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		apply(t, s, fixture("c1")...)
		r := msg("r/1", "retained")
		r.Retain = true
		r.ExpireAt = time.Now().Add(time.Hour).UnixNano()
		apply(t, s, Op{Retained: &r})

		check := func(d dump) {
			t.Helper()
			f := fixture("c1")
			equal(t, "order", d.Order, "suuiiirtw")
			equal(t, "sessions", d.Sessions, []Session{*f[0].Session})
			equal(t, "subs", d.Subs, []Subscription{*f[1].Sub, *f[2].Sub})
			equal(t, "outbound", d.Out, []Outbound{*f[4].Outbound, *f[3].Outbound, *f[5].Outbound})
			equal(t, "inbound", d.In, []InboundQoS2{*f[6].Inbound})
			equal(t, "retained", d.Retained, []Message{r})
			equal(t, "wills", d.Wills, []Will{*f[7].Will})
		}
		check(load(t, s))
		s = be.reopen(t, s)
		check(load(t, s))
	})
}

func TestDeleteEachRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		f := fixture("c1")
		r := msg("r/1", "x")
		apply(t, s, append(f, Op{Retained: &r})...)
		apply(t, s,
			Op{Delete: true, Sub: &Subscription{ClientID: "c1", Filter: "a/#"}},
			Op{Delete: true, Outbound: &Outbound{ClientID: "c1", Seq: 2}},
			Op{Delete: true, Inbound: &InboundQoS2{ClientID: "c1", PacketID: 9}},
			Op{Delete: true, Retained: &Message{Topic: []byte("r/1")}},
			Op{Delete: true, Will: &Will{ClientID: "c1"}},
		)
		d := load(t, s)
		equal(t, "order", d.Order, "suii")
		equal(t, "subs", d.Subs, []Subscription{*f[2].Sub})
		equal(t, "outbound", d.Out, []Outbound{*f[4].Outbound, *f[5].Outbound})
		// Deleting what is not there is fine.
		apply(t, s, Op{Delete: true, Will: &Will{ClientID: "nobody"}}, Op{Delete: true, Session: &Session{ClientID: "nobody"}})
	})
}

// Client ids that are prefixes of each other, or differ only after a low
// byte, must not share records.
var trickyIDs = []string{"a", "a\x01", "ab", "ab:x", "ab\x01", "abc", ""}

func TestSessionDeleteCascades(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		for _, cid := range trickyIDs {
			apply(t, s, fixture(cid)...)
		}
		apply(t, s, Op{Delete: true, Session: &Session{ClientID: "ab"}})
		apply(t, s, Op{Delete: true, Session: &Session{ClientID: "a"}})
		d := load(t, s)
		want := map[string]bool{"a\x01": true, "ab:x": true, "ab\x01": true, "abc": true, "": true}
		seen := map[string]int{}
		for _, x := range d.Sessions {
			seen[x.ClientID]++
		}
		for _, x := range d.Subs {
			seen[x.ClientID]++
		}
		for _, x := range d.Out {
			seen[x.ClientID]++
		}
		for _, x := range d.In {
			seen[x.ClientID]++
		}
		for _, x := range d.Wills {
			seen[x.ClientID]++
		}
		for cid, n := range seen {
			if !want[cid] {
				t.Fatalf("client %q: %d records survived its session delete", cid, n)
			}
			if n != 8 {
				t.Fatalf("client %q: %d records, want 8", cid, n)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("clients %v, want %v", seen, want)
		}
	})
}

func TestSessionDeleteInOneUnit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		apply(t, s, fixture("c")...)
		// Clean start in one unit: delete, then the new session.
		apply(t, s,
			Op{Sub: &Subscription{ClientID: "c", Filter: "old"}},
			Op{Delete: true, Session: &Session{ClientID: "c"}},
			Op{Session: &Session{ClientID: "c", Version: 4}},
			Op{Sub: &Subscription{ClientID: "c", Filter: "new"}},
		)
		d := load(t, s)
		equal(t, "order", d.Order, "su")
		equal(t, "session", d.Sessions, []Session{{ClientID: "c", Version: 4}})
		equal(t, "subs", d.Subs, []Subscription{{ClientID: "c", Filter: "new"}})
	})
}

// Writes still being committed when the session delete arrives are deleted
// too: the delete is ordered after them.
func TestSessionDeleteAfterPendingWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			op := Op{Sub: &Subscription{ClientID: "c", Filter: "f/" + string(rune('a'+i%26)) + "/" + time.Duration(i).String()}}
			if err := s.Apply([]Op{op}, func(error) { wg.Done() }); err != nil {
				t.Fatal(err)
			}
			if i == 150 {
				if err := s.Apply([]Op{{Delete: true, Session: &Session{ClientID: "c"}}}, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		wg.Wait()
		d := load(t, s)
		if len(d.Subs) != 49 {
			t.Fatalf("%d subscriptions survive, want the 49 written after the delete", len(d.Subs))
		}
	})
}

func TestOutboundOrderedBySeq(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		seqs := []uint64{300, 1, 256, 1 << 40, 0, 255, 65536}
		for _, q := range seqs {
			apply(t, s, Op{Outbound: &Outbound{ClientID: "c", Seq: q, Msg: msg("t", "p")}})
		}
		apply(t, s, Op{Outbound: &Outbound{ClientID: "c\x01", Seq: 2, Msg: msg("t", "p")}})
		var got []uint64
		for _, o := range load(t, s).Out {
			if o.ClientID == "c" {
				got = append(got, o.Seq)
			}
		}
		equal(t, "seqs", got, []uint64{0, 1, 255, 256, 300, 65536, 1 << 40})
	})
}

func TestExpiredSkippedAndDeleted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		now := time.Now()
		past := now.Add(-time.Hour).UnixNano()
		future := now.Add(time.Hour).UnixNano()
		apply(t, s, fixture("gone")...)
		apply(t, s, fixture("down")...)
		apply(t, s, fixture("live")...)
		apply(t, s, fixture("forever")...)
		expiredMsg := msg("x", "y")
		expiredMsg.ExpireAt = past
		apply(t, s,
			// Disconnected 2h ago with a 1h expiry: gone, with its records.
			Op{Session: &Session{ClientID: "gone", Version: 5, ExpiryInterval: 3600, DisconnectedAt: now.Add(-2 * time.Hour).UnixNano()}},
			// Disconnected 10 min ago with a 1h expiry: kept.
			Op{Session: &Session{ClientID: "down", Version: 5, ExpiryInterval: 3600, DisconnectedAt: now.Add(-10 * time.Minute).UnixNano()}},
			Op{Session: &Session{ClientID: "forever", Version: 5, ExpiryInterval: ExpiryNever, DisconnectedAt: 1}},
			// Queued and expired: dropped. Sent and expired: kept.
			Op{Outbound: &Outbound{ClientID: "live", Seq: 10, Msg: expiredMsg}},
			Op{Outbound: &Outbound{ClientID: "live", Seq: 11, PacketID: 5, State: OutboundSent, Msg: expiredMsg}},
			Op{Retained: &Message{Topic: []byte("old"), Payload: []byte("x"), ExpireAt: past}},
			Op{Retained: &Message{Topic: []byte("new"), Payload: []byte("x"), ExpireAt: future}},
			Op{Will: &Will{ClientID: "expiredwill", Msg: expiredMsg}},
		)
		check := func(d dump) {
			t.Helper()
			var sessions []string
			for _, x := range d.Sessions {
				sessions = append(sessions, x.ClientID)
			}
			equal(t, "sessions", sessions, []string{"down", "forever", "live"})
			for _, x := range d.Subs {
				if x.ClientID == "gone" {
					t.Fatalf("subscription of an expired session loaded: %+v", x)
				}
			}
			var seqs []uint64
			for _, x := range d.Out {
				if x.ClientID == "gone" {
					t.Fatalf("outbound of an expired session loaded: %+v", x)
				}
				if x.ClientID == "live" {
					seqs = append(seqs, x.Seq)
				}
			}
			equal(t, "live outbound", seqs, []uint64{1, 2, 3, 11})
			for _, x := range d.In {
				if x.ClientID == "gone" {
					t.Fatalf("inbound of an expired session loaded: %+v", x)
				}
			}
			equal(t, "retained", len(d.Retained), 1)
			equal(t, "retained topic", string(d.Retained[0].Topic), "new")
			// The will of the expired session goes with it; an expired
			// will message is dropped.
			var wills []string
			for _, x := range d.Wills {
				wills = append(wills, x.ClientID)
			}
			equal(t, "wills", wills, []string{"down", "forever", "live"})
		}
		check(load(t, s))
		// Load deleted what it skipped: a raw count shows it.
		s = be.reopen(t, s)
		check(load(t, s))
		keys := rawKeys(t, s)
		// 3 fixtures of 8 records, "live"'s sent outbound and retained "new".
		if len(keys) != 3*8+1+1 {
			t.Fatalf("%d keys stored after Load, want 26: %q", len(keys), keys)
		}
		for _, k := range keys {
			if strings.Contains(k, "gone") {
				t.Fatalf("key %q of an expired session still stored", k)
			}
			if k == "told" || k == "wexpiredwill\x00" || k == "ilive\x00\x00\x00\x00\x00\x00\x00\x00\x0a" {
				t.Fatalf("expired key %q still stored", k)
			}
		}
	})
}

// rawKeys lists the stored keys, bypassing Load.
func rawKeys(t testing.TB, s Store) []string {
	t.Helper()
	var keys []string
	switch s := s.(type) {
	case *Memory:
		s.mu.Lock()
		for k := range s.d.kv {
			keys = append(keys, k)
		}
		s.mu.Unlock()
	case *Badger:
		if err := s.flushWait(&unit{}); err != nil {
			t.Fatal(err)
		}
		txn := s.db.NewTransactionAt(^uint64(0), false)
		defer txn.Discard()
		it := txn.NewIterator(badgerKeysOnly)
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, string(it.Item().Key()))
		}
		it.Close()
	case interface{ testKeys(testing.TB) []string }:
		keys = s.testKeys(t)
	}
	return keys
}

func TestLastWriteWinsInOneUnit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		a, b := msg("t", "first"), msg("t", "second")
		o := Outbound{ClientID: "c", Seq: 1, Msg: msg("t", "p")}
		apply(t, s,
			Op{Retained: &a},
			Op{Retained: &b},
			Op{Outbound: &o},
			Op{Delete: true, Outbound: &Outbound{ClientID: "c", Seq: 1}},
			Op{Session: &Session{ClientID: "c", Version: 3}},
			Op{Session: &Session{ClientID: "c", Version: 5}},
		)
		d := load(t, s)
		equal(t, "order", d.Order, "st")
		equal(t, "retained", d.Retained, []Message{b})
		equal(t, "session", d.Sessions, []Session{{ClientID: "c", Version: 5}})
		// A delete then a put of an outbound key that existed before.
		apply(t, s, Op{Outbound: &o})
		o2 := o
		o2.State, o2.PacketID = OutboundSent, 3
		apply(t, s, Op{Outbound: &o2}, Op{Delete: true, Outbound: &o2})
		equal(t, "outbound after put, delete", load(t, s).Out, []Outbound(nil))
	})
}

func TestApplyCopiesInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		topic, payload := []byte("t/1"), []byte("payload")
		ops := []Op{{Retained: &Message{Topic: topic, Payload: payload}}}
		ch := make(chan error, 1)
		if err := s.Apply(ops, func(err error) { ch <- err }); err != nil {
			t.Fatal(err)
		}
		copy(topic, "XXX")
		copy(payload, "XXXXXXX")
		ops[0] = Op{}
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
		d := load(t, s)
		equal(t, "retained", d.Retained, []Message{{Topic: []byte("t/1"), Payload: []byte("payload")}})
	})
}

func TestInvalidOps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		f := func(op Op, want error) {
			t.Helper()
			called := false
			err := s.Apply([]Op{{Session: &Session{ClientID: "ok"}}, op}, func(error) { called = true })
			if !errors.Is(err, want) {
				t.Fatalf("Apply = %v, want %v", err, want)
			}
			if called {
				t.Fatalf("done called for a refused Apply")
			}
		}
		f(Op{}, ErrInvalidOp)
		f(Op{Session: &Session{}, Will: &Will{}}, ErrInvalidOp)
		f(Op{Session: &Session{ClientID: "a\x00b"}}, ErrInvalidOp)
		f(Op{Sub: &Subscription{ClientID: "a", Filter: ""}}, ErrInvalidOp)
		f(Op{Sub: &Subscription{ClientID: "a", Filter: "x\x00"}}, ErrInvalidOp)
		f(Op{Sub: &Subscription{ClientID: "a", Filter: "x", QoS: 3}}, ErrInvalidOp)
		f(Op{Outbound: &Outbound{ClientID: "a", State: 3}}, ErrInvalidOp)
		f(Op{Retained: &Message{}}, ErrInvalidOp)
		f(Op{Retained: &Message{Topic: []byte("t"), QoS: 3}}, ErrInvalidOp)
		f(Op{Retained: &Message{Topic: bytes.Repeat([]byte("a"), 70000)}}, ErrTooLarge)
		if d := load(t, s); len(d.Sessions) != 0 {
			t.Fatalf("a refused Apply stored %+v", d.Sessions)
		}
		apply(t, s) // an empty unit is fine
	})
}

func TestClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		apply(t, s, fixture("c")...)
		if err := s.Healthy(); err != nil {
			t.Fatalf("Healthy of an open store = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Healthy(); !errors.Is(err, ErrClosed) {
			t.Fatalf("Healthy after Close = %v, want ErrClosed", err)
		}
		if err := s.Apply(fixture("d"), func(error) { t.Errorf("done called after Close") }); !errors.Is(err, ErrClosed) {
			t.Fatalf("Apply after Close = %v, want ErrClosed", err)
		}
		if err := s.Load(Visitor{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Load after Close = %v, want ErrClosed", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close = %v, want ErrClosed", err)
		}
	})
}

func TestParseDurability(t *testing.T) {
	f := func(s string, want Durability, ok bool) {
		t.Helper()
		got, err := ParseDurability(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseDurability(%q) = %v, %v", s, got, err)
		}
		if ok && got.String() != s {
			t.Fatalf("%v.String() = %q", got, got.String())
		}
	}
	f("commit", DurabilityCommit, true)
	f("sync", DurabilitySync, true)
	f("none", DurabilityNone, true)
	f("fsync", 0, false)
	f("", 0, false)
}

func TestCorruptValueFailsLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		apply(t, s, fixture("c")...)
		key, val := []byte("sbad\x00"), []byte{formatV1, 5, 0, 0}
		switch s := s.(type) {
		case *Memory:
			s.putRaw(key, val)
		case interface{ flushWait(*unit) error }: // Badger, Redis
			if err := s.flushWait(&unit{ents: []entry{{key: key, val: val}}}); err != nil {
				t.Fatal(err)
			}
		}
		err := s.Load(Visitor{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"sbad\x00"`) {
			t.Fatalf("Load with a corrupt value = %v, want ErrCorrupt naming the key", err)
		}
	})
}

// A session's owner survives a reopen; a record without one (as written
// before owners were kept) loads as OwnerUnknown.
func TestSessionOwnerRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		want := []Session{
			{ClientID: "a", Version: 4, ExpiryInterval: ExpiryNever},
			{ClientID: "b", Version: 5, ExpiryInterval: 60, OwnerKind: OwnerAnonymous},
			{ClientID: "c", Version: 5, ExpiryInterval: 60, Owner: "alice", OwnerKind: OwnerUser},
		}
		for i := range want {
			apply(t, s, Op{Session: &want[i]})
		}
		equal(t, "sessions", load(t, s).Sessions, want)
		s = be.reopen(t, s)
		equal(t, "sessions after reopen", load(t, s).Sessions, want)
	})
}

// Delayed messages load in the order they are due, after every other
// record, survive a reopen, and are deleted by PublishAt and ID; one whose
// Message Expiry passed is dropped, one merely past its time is not.
func TestDelayedRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		s := be.open(t)
		now := time.Now().UnixNano()
		later, sooner, past := msg("a/later", "3"), msg("a/sooner", "1"), msg("a/past", "0")
		later.QoS, later.Retain, later.Props = 1, true, []byte{0x01, 0x01}
		expired := msg("a/expired", "x")
		expired.ExpireAt = now - 1
		ops := []Op{
			{Delayed: &Delayed{ID: 3, PublishAt: now + 3e9, Origin: "pub", Msg: later}},
			{Delayed: &Delayed{ID: 9, PublishAt: now + 1e9, Msg: sooner}},
			{Delayed: &Delayed{ID: 1, PublishAt: now - 5e9, Origin: "old", Msg: past}},
			{Delayed: &Delayed{ID: 4, PublishAt: now + 2e9, Msg: expired}},
			{Delayed: &Delayed{ID: 5, PublishAt: now + 2e9, Msg: msg("a/gone", "2")}},
		}
		apply(t, s, append(ops, fixture("c")...)...)
		apply(t, s, Op{Delete: true, Delayed: &Delayed{ID: 5, PublishAt: now + 2e9}})
		check := func(s Store) {
			t.Helper()
			var got []Delayed
			var order strings.Builder
			err := s.Load(Visitor{
				Delayed:  func(d Delayed) { got = append(got, d); order.WriteByte('d') },
				Session:  func(Session) { order.WriteByte('s') },
				Retained: func(Message) { order.WriteByte('t') },
			})
			if err != nil {
				t.Fatal(err)
			}
			if o := order.String(); !strings.HasSuffix(o, "ddd") || strings.Count(o, "d") != 3 {
				t.Fatalf("load order %q", o)
			}
			equal(t, "delayed", got, []Delayed{*ops[2].Delayed, *ops[1].Delayed, *ops[0].Delayed})
		}
		check(s)
		s = be.reopen(t, s)
		check(s)
	})
}
