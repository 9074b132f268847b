package broker

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// bans counts failed authentications per source IP and per client id.
// Past Options.BanThreshold failures within Options.BanWindow the source
// is banned for Options.BanDuration: an IP is refused at accept (Admit),
// at CONNECT and again when a verdict lands (a burst of guesses sent
// before the ban is not let through by its late verdicts). A client id
// is chosen by whoever connects, so its ban never refuses a CONNECT whose
// credentials verify: it only turns a failed one's code into 0x8A Banned,
// and refusals that name no credentials (anonymous access off) are not
// counted against the id at all.
//
// Safe for concurrent use: a mutex, taken per accepted connection and per
// failed CONNECT (never on the publish path). Both maps hold at most
// Options.BanMaxTracked keys: when full, expired keys are swept; if none
// has expired, a new key is not tracked (counted in
// mcutie_ban_sources_untracked_total) rather than growing without bound.
type bans struct {
	b *Broker
	// threshold is read without the lock (per accepted connection);
	// window, duration, max and maxPending are guarded by mu. All change
	// at run time (Broker.SetBanPolicy).
	threshold atomic.Int64
	window    int64
	duration  int64
	max       int

	mu  sync.Mutex
	ips map[string]*banEntry
	ids map[string]*banEntry
	// pending counts the authentications in progress per source IP
	// (Options.MaxPendingAuthPerIP): a burst of guesses is not all
	// checked before the first failures ban the address.
	pending    map[string]int
	maxPending int

	// untilIP and untilID are the latest end of any ban issued (unix
	// ns): past it nothing is banned, and a connection is not checked at
	// all (no lock, no address formatted).
	untilIP, untilID atomic.Int64
	// untilAdminID is untilID for the client ids Broker.Ban banned.
	untilAdminID atomic.Int64

	issuedIP, issuedID     atomic.Uint64
	refusedIP, refusedID   atomic.Uint64
	failures, trackingFull atomic.Uint64
}

type banEntry struct {
	start int64 // unix ns: the window began
	n     int
	until int64 // unix ns: banned until; 0 = not banned
	// admin: set by Broker.Ban (adminban.go). A client id banned so is
	// refused at CONNECT whatever its credentials.
	admin bool
}

func newBans(b *Broker) *bans {
	o := &b.opts
	t := &bans{b: b, window: int64(o.BanWindow), duration: int64(o.BanDuration),
		max: o.BanMaxTracked, ips: map[string]*banEntry{}, ids: map[string]*banEntry{},
		pending: map[string]int{}, maxPending: o.MaxPendingAuthPerIP}
	t.threshold.Store(int64(o.BanThreshold))
	return t
}

// BanPolicy is the part of the ban settings that may change while the
// broker runs (Broker.SetBanPolicy): Options.BanThreshold, BanWindow,
// BanDuration, BanMaxTracked and MaxPendingAuthPerIP.
type BanPolicy struct {
	Threshold           int // 0: no new bans, and bans in force are not checked
	Window, Duration    time.Duration
	MaxTracked          int
	MaxPendingAuthPerIP int
}

// SetBanPolicy changes the ban settings of a running broker (a SIGHUP
// reload): failures are counted against the new threshold and window
// from now on; bans already issued keep their end. Values at or below 0
// but Threshold are left unchanged. Safe for concurrent use.
func (b *Broker) SetBanPolicy(p BanPolicy) {
	t := b.bans
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.Window > 0 {
		t.window = int64(p.Window)
	}
	if p.Duration > 0 {
		t.duration = int64(p.Duration)
	}
	if p.MaxTracked > 0 {
		t.max = p.MaxTracked
	}
	if p.MaxPendingAuthPerIP > 0 {
		t.maxPending = p.MaxPendingAuthPerIP
	}
	t.threshold.Store(int64(max(p.Threshold, 0)))
}

// beginPending counts one more authentication in progress from ip and
// reports false, counting nothing, when ip already has maxPending.
func (t *bans) beginPending(ip string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[ip] >= t.maxPending {
		return false
	}
	t.pending[ip]++
	return true
}

// endPending ends one authentication beginPending counted.
func (t *bans) endPending(ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.pending[ip]; n <= 1 {
		delete(t.pending, ip)
	} else {
		t.pending[ip] = n - 1
	}
}

// ipBanned reports whether ip is banned at now.
func (t *bans) ipBanned(ip string, now int64) bool {
	return t.anyIP(now) && t.banned(t.ips, ip, now)
}

// fail records one failed authentication from ip for client id.
func (t *bans) fail(ip, id string, now int64) {
	t.failures.Add(1)
	if t.threshold.Load() <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ip != "" && t.record(t.ips, ip, now) {
		t.issuedIP.Add(1)
		raise(&t.untilIP, now+t.duration)
		t.b.opts.Logger.Warn("banned source address: too many failed authentications",
			slog.String("ip", ip), slog.Int64("failures", t.threshold.Load()), slog.Duration("for", time.Duration(t.duration)))
	}
	if id != "" && t.record(t.ids, id, now) {
		t.issuedID.Add(1)
		raise(&t.untilID, now+t.duration)
		t.b.opts.Logger.Warn("banned client id: too many failed authentications",
			slog.String("client", id), slog.Int64("failures", t.threshold.Load()), slog.Duration("for", time.Duration(t.duration)))
	}
}

// record counts a failure for key and reports whether it starts a ban.
func (t *bans) record(m map[string]*banEntry, key string, now int64) bool {
	e := m[key]
	if e == nil {
		if len(m) >= t.max {
			t.sweep(m, now)
			if len(m) >= t.max {
				t.trackingFull.Add(1)
				return false
			}
		}
		e = &banEntry{start: now}
		m[key] = e
	}
	if e.until > now {
		return false // already banned
	}
	if now-e.start > t.window {
		e.start, e.n = now, 0
	}
	e.n++
	if th := t.threshold.Load(); th > 0 && int64(e.n) >= th {
		e.until = now + t.duration
		e.start, e.n = now, 0
		return true
	}
	return false
}

func (t *bans) sweep(m map[string]*banEntry, now int64) {
	for k, e := range m {
		if e.until <= now && now-e.start > t.window {
			delete(m, k)
		}
	}
}

func raise(v *atomic.Int64, to int64) {
	for {
		cur := v.Load()
		if cur >= to || v.CompareAndSwap(cur, to) {
			return
		}
	}
}

// anyIP and anyID report whether a ban of that kind may be in force at now.
func (t *bans) anyIP(now int64) bool { return now < t.untilIP.Load() }
func (t *bans) anyID(now int64) bool { return now < t.untilID.Load() }

func (t *bans) banned(m map[string]*banEntry, key string, now int64) bool {
	if key == "" {
		return false // (with no --ban-threshold only Broker.Ban fills the maps)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := m[key]
	return e != nil && e.until > now
}

// hostOf returns the IP of "host:port" (or of a bare host), in the form
// bans are keyed by.
func hostOf(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// ErrBanned is Admit's refusal of a banned source address.
var ErrBanned = errors.New("broker: source address banned after failed authentications (--ban-threshold)")

// checkBan refuses remote while it is banned; refusals are counted
// (mcutie_connections_rejected_total{reason="banned_ip"}), not logged one
// by one: the ban itself was.
func (b *Broker) checkBan(remote netip.Addr) error {
	if !remote.IsValid() {
		return nil
	}
	if now := b.readClock(); b.bans.anyIP(now) && b.bans.banned(b.bans.ips, remote.Unmap().String(), now) {
		b.bans.refusedIP.Add(1)
		return ErrBanned
	}
	return nil
}
