package broker

import (
	"testing"

	"github.com/mcutie/mcutie/codec"
)

// BenchmarkACLCacheHit: one cached ACL verdict on the publish path (what
// each PUBLISH's write check and each delivery's read check cost once
// the topic's verdict is cached): a generation load and a map lookup.
func BenchmarkACLCacheHit(b *testing.B) {
	br := authBroker(b, Options{Authorizer: &testACL{}}, nil)
	c, _ := connectClient(b, br, "c", codec.V5, false)
	topic := []byte("sensors/42/temp")
	c.s.allowed(topic, AccessWrite)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !c.s.allowed(topic, AccessWrite) {
			b.Fatal("denied")
		}
	}
}
