package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// BenchmarkSessionsPage: what one management API query costs the loop
// that answers it, in all and at once (µs-held-max: the longest chunk of
// its walk, median) (one loop, sockets and HTTP left out), at 10,000 and
// 100,000 connected sessions with one subscription each. allocs/op stays
// that of one page whatever the number of sessions: the loop copies the
// page, not its table.
func BenchmarkSessionsPage(b *testing.B) {
	var held []time.Duration
	walkObserved = func(d time.Duration) { held = append(held, d) }
	defer func() { walkObserved = nil }()
	for _, n := range []int{10000, 100000} {
		br := newTestBroker(b, 1)
		for i := 0; i < n; i++ {
			c, _ := connectClient(b, br, fmt.Sprintf("dev-%06d", i), codec.V311, false)
			subscribe(b, c, codec.V311, fmt.Sprintf("dev/%d/cmd", i), 1)
		}
		ctx := context.Background()
		run := func(name string, fn func() error) {
			b.Run(fmt.Sprintf("%s/sessions=%d", name, n), func(b *testing.B) {
				b.ReportAllocs()
				held = held[:0]
				for i := 0; i < b.N; i++ {
					if err := fn(); err != nil {
						b.Fatal(err)
					}
				}
				// How long the loop was held at once (one chunk of the
				// walk): the median, and the chunks per query.
				if len(held) > 0 {
					slices.Sort(held)
					b.ReportMetric(float64(held[len(held)/2].Microseconds()), "µs/chunk")
					b.ReportMetric(float64(len(held))/float64(b.N), "chunks/op")
				}
			})
		}
		run("first100", func() error { _, err := br.Sessions(ctx, Query{Limit: 100}); return err })
		run("page50of100", func() error { _, err := br.Sessions(ctx, Query{Offset: 4900, Limit: 100}); return err })
		run("after100", func() error { _, err := br.Sessions(ctx, Query{After: "dev-005000", Limit: 100}); return err })
		run("match", func() error { _, err := br.Sessions(ctx, Query{Match: "dev-00042", Limit: 100}); return err })
		run("one", func() error { _, _, err := br.Session(ctx, "dev-000042"); return err })
		run("subscriptions100", func() error { _, err := br.Subscriptions(ctx, Query{Limit: 100}); return err })
	}
}
