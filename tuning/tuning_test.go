package tuning

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestParseBytes(t *testing.T) {
	f := func(s string, want int64, ok bool) {
		t.Helper()
		got, err := ParseBytes(s)
		if (err == nil) != ok || (ok && got != want) {
			t.Fatalf("ParseBytes(%q) = %d, %v; want %d, ok=%v", s, got, err, want, ok)
		}
	}
	f("1048576", 1048576, true)
	f("64k", 64<<10, true)
	f("512MiB", 512<<20, true)
	f("2GiB", 2<<30, true)
	f("1mb", 1e6, true)
	f("-1", 0, false)
	f("lots", 0, false)
}

func TestApply(t *testing.T) {
	oldProcs := runtime.GOMAXPROCS(0)
	oldGC := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	defer func() {
		runtime.GOMAXPROCS(oldProcs)
		debug.SetGCPercent(oldGC)
		debug.SetMemoryLimit(oldLimit)
	}()
	got := Runtime{GOMAXPROCS: 1, GOGC: 250, MemoryLimit: 1 << 30}.Apply()
	if got.GOMAXPROCS != 1 || got.GOGC != 250 || got.MemoryLimit != 1<<30 {
		t.Fatalf("Apply = %+v", got)
	}
}

func TestLookupProfile(t *testing.T) {
	for _, name := range []string{"throughput", "latency", "low-memory"} {
		if p, ok, err := LookupProfile(name); !ok || err != nil || p.Name != name {
			t.Fatalf("LookupProfile(%q) = %+v, %v, %v", name, p, ok, err)
		}
	}
	if _, _, err := LookupProfile("fastest"); err == nil {
		t.Fatal("unknown profile accepted")
	}
	if _, ok, err := LookupProfile(""); ok || err != nil {
		t.Fatal("empty profile should be none")
	}
}
