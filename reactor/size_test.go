package reactor

import (
	"testing"
	"unsafe"
)

// TestConnStateSize guards the memory budget of an idle connection
// (docs/benchmarks.md, "Memory per idle connection"): connState, with the
// broker's Client and admission Ticket inside, is the one allocation
// mcutie makes per connection besides the Session. 192 bytes is its Go
// size class.
func TestConnStateSize(t *testing.T) {
	if got := unsafe.Sizeof(connState{}); got > 192 {
		t.Errorf("connState is %d bytes, over its 192-byte size class: move rarely used state into connExtra", got)
	}
}
