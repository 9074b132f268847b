package broker

import (
	"sync/atomic"
	"testing"
	"time"
)

// The coarse clock's goroutine parks when nobody reads it often; readers
// then get the system clock itself, and frequent reads wake the goroutine.
func TestClockParksAndWakes(t *testing.T) {
	var fake atomic.Int64
	fake.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	// A coarse (not direct) clock over a fake system clock.
	c := newClock(func() time.Time { return time.Unix(0, fake.Load()) }, false)
	defer c.stop()
	parked := func() bool {
		deadline := time.Now().Add(5 * time.Second)
		for !c.idle.Load() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(time.Millisecond)
		}
		return true
	}
	if !parked() {
		t.Fatal("the clock goroutine did not park without readers")
	}

	// Parked: every read is the system clock's (here the fake's) time.
	// Reads slower than clockWakeReads per clockLinger do not wake it.
	for i := range 3 * clockWakeReads {
		fake.Add(int64(clockLinger) / clockWakeReads * 2)
		if got, want := c.read(), fake.Load(); got != want {
			t.Fatalf("read %d while parked: %d, want the system clock %d", i, got, want)
		}
	}
	if !c.idle.Load() {
		t.Fatal("2,500 reads a second woke the clock goroutine")
	}

	// Frequent reads wake it; from then on readers get the coarse clock.
	for range clockWakeReads {
		fake.Add(1000)
		c.read()
	}
	if c.idle.Load() {
		t.Fatal("clockWakeReads reads within 100 µs did not wake the clock goroutine")
	}
	frozen := c.read()
	fake.Add(int64(time.Hour))
	if got := c.read(); got != frozen && got != fake.Load() {
		t.Fatalf("awake clock read %d, want the coarse %d or a tick's %d", got, frozen, fake.Load())
	}
	if !parked() {
		t.Fatal("the clock goroutine did not park again once reads stopped")
	}
}
