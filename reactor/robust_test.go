package reactor

import (
	"testing"
	"time"
)

// Options.PacketTimeout: 0 is the default, negative turns it off.
func TestPacketTimeoutDefault(t *testing.T) {
	f := func(in, want time.Duration) {
		t.Helper()
		s := &Server{opts: Options{PacketTimeout: in}}
		if got := s.packetTimeout(); got != want {
			t.Fatalf("PacketTimeout %v: got %v, want %v", in, got, want)
		}
	}
	f(0, DefaultPacketTimeout)
	f(-1, -1)
	f(5*time.Second, 5*time.Second)
}
