package broker

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
)

type noopPublishHook struct{ name string }

func (h noopPublishHook) Name() string                                   { return h.name }
func (noopPublishHook) Provides() hooks.Events                           { return hooks.EventsOf(hooks.Publish) }
func (noopPublishHook) OnPublish(*hooks.Message) (*hooks.Message, error) { return nil, nil }

// BenchmarkPublishHooks: BenchmarkPublishLocal (v5, QoS 0, 64 B, one
// local subscriber) with 0, 1 and 5 no-op Publish hooks registered: what
// the interceptor costs per message.
func BenchmarkPublishHooks(b *testing.B) {
	for _, n := range []int{0, 1, 5} {
		b.Run(fmt.Sprintf("hooks=%d", n), func(b *testing.B) {
			var reg *hooks.Registry
			if n > 0 {
				reg = hooks.New(hooks.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				defer reg.Stop()
				for i := range n {
					if err := reg.Add(noopPublishHook{fmt.Sprintf("noop-%d", i)}); err != nil {
						b.Fatal(err)
					}
				}
			}
			br := limitBroker(b, Options{Hooks: reg})
			sub, _ := connectClient(b, br, "sub", codec.V5, false)
			subscribe(b, sub, codec.V5, "sensors/+/temp", 0)
			pub, _ := connectClient(b, br, "pub", codec.V5, false)
			p := codec.Publish{Topic: []byte("sensors/42/temp"), Payload: make([]byte, 64)}
			raw := p.Append(nil, codec.V5)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.Feed(raw)
			}
		})
	}
}
