package broker

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// BenchmarkPublishWildcardWorstCase: the matching work one session can put
// on every PUBLISH (issue 21.2). The session holds filters of 128 levels,
// each level 'a' or '+' at random, all matching a/a/…/a, as many as
// MaxWildcardLevels lets it (default: 32 of them); "unbounded" is the
// attack as found (10,000 such filters, which the default now refuses).
// ns/op is one 128-level PUBLISH matched and delivered once.
func BenchmarkPublishWildcardWorstCase(b *testing.B) {
	for _, bc := range []struct {
		name    string
		filters int
		budget  int
	}{{"default", DefaultMaxWildcardLevels / 128, DefaultMaxWildcardLevels}, {"unbounded", 10000, 10000 * 128}} {
		b.Run(bc.name, func(b *testing.B) {
			// --max-subscription-bytes (1 MiB: ~4,100 such filters) is
			// lifted too, so that "unbounded" is the attack as found.
			br := New(Options{Loops: 1, MaxWildcardLevels: bc.budget, MaxSubscriptionBytes: 1 << 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			for _, l := range br.loops {
				l.Bind(func(fn func()) error { fn(); return nil })
			}
			sub, _ := connectClient(b, br, "sub", codec.V311, false)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := 0; i < bc.filters; i++ {
				lv := make([]string, 128)
				for j := range lv {
					lv[j] = "a"
					if rng.IntN(2) == 0 {
						lv[j] = "+"
					}
				}
				s := codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: []byte(strings.Join(lv, "/"))}}}
				sub.Feed(s.Append(nil, codec.V311))
			}
			if n := len(sub.s.subscriptions()); n != bc.filters {
				b.Fatalf("%d filters subscribed, want %d", n, bc.filters)
			}
			pub, _ := connectClient(b, br, "pub", codec.V311, false)
			p := codec.Publish{Topic: []byte(strings.Repeat("a/", 127) + "a"), Payload: make([]byte, 4)}
			raw := p.Append(nil, codec.V311)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Feed(raw)
			}
		})
	}
}
