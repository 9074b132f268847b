package tuning

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Runtime are the Go runtime knobs. Zero values leave the runtime's own
// setting (or the environment's GOMAXPROCS / GOGC / GOMEMLIMIT) alone.
type Runtime struct {
	GOMAXPROCS  int   // --gomaxprocs
	GOGC        int   // --gogc; -1 disables the collector (only sensible with MemoryLimit)
	MemoryLimit int64 // --memory-limit, bytes (soft limit, GOMEMLIMIT)
}

// Apply sets the knobs on the running process and returns what is in force.
func (r Runtime) Apply() Runtime {
	if r.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(r.GOMAXPROCS)
	}
	if r.GOGC != 0 {
		debug.SetGCPercent(r.GOGC)
	}
	if r.MemoryLimit > 0 {
		debug.SetMemoryLimit(r.MemoryLimit)
	}
	cur := Runtime{GOMAXPROCS: runtime.GOMAXPROCS(0), MemoryLimit: debug.SetMemoryLimit(-1)}
	cur.GOGC = debug.SetGCPercent(100)
	debug.SetGCPercent(cur.GOGC)
	return cur
}

// Profile is a named set of defaults for knobs the user did not set.
type Profile struct {
	Name           string
	GOGC           int
	ReadBufferCap  int // bytes per loop read buffer / per-connection inbound cap
	WriteBufferCap int // bytes per-connection outbound ring
	MaxOutbound    int // bytes before a connection is a slow consumer
	InboxSize      int
	LockOSThread   bool
}

// Profiles are the presets of --profile.
var Profiles = map[string]Profile{
	// throughput: bigger buffers, a lazier GC, loops pinned to threads.
	"throughput": {Name: "throughput", GOGC: 400, ReadBufferCap: 256 << 10, WriteBufferCap: 256 << 10, MaxOutbound: 16 << 20, InboxSize: 65536, LockOSThread: true},
	// latency: default buffers, a steadier GC, loops pinned to threads.
	"latency": {Name: "latency", GOGC: 100, ReadBufferCap: 64 << 10, WriteBufferCap: 64 << 10, MaxOutbound: 4 << 20, InboxSize: 16384, LockOSThread: true},
	// low-memory: small buffers and an eager GC, for many idle connections.
	"low-memory": {Name: "low-memory", GOGC: 50, ReadBufferCap: 16 << 10, WriteBufferCap: 4 << 10, MaxOutbound: 1 << 20, InboxSize: 4096},
}

// LookupProfile returns the named profile ("" is no profile).
func LookupProfile(name string) (Profile, bool, error) {
	if name == "" {
		return Profile{}, false, nil
	}
	p, ok := Profiles[name]
	if !ok {
		return Profile{}, false, fmt.Errorf("tuning: unknown profile %q (want throughput, latency or low-memory)", name)
	}
	return p, true, nil
}

// ParseBytes reads a size such as "512MiB", "2GiB", "64k" or "1048576".
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("tuning: bad size %q (want e.g. 512MiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("tuning: size %q too large", s)
	}
	return n * mult, nil
}
