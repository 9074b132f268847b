package main

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mcutie/mcutie/broker"
)

// reloader re-reads the settings on SIGHUP (the command line as given at
// start, the environment, the --config file) and applies those that can
// change while the broker runs; a changed setting that cannot is named in
// a warning and keeps its running value until a restart. A file that does
// not load leaves every running value as it is.
//
// What can change at run time is what the broker reads through a lock or
// an atomic: the log level, the connection log's rate, and the ban policy.
// Every other limit is read by the event loops from their copy of
// broker.Options without synchronisation (that is what keeps them cheap),
// so changing one needs a restart. The password, ACL and TLS files named
// by the running settings are re-read on every SIGHUP besides (security.go,
// reactor.Server.ReloadTLS).
//
// Used by the signal loop only (one goroutine).
type reloader struct {
	args []string
	fs   *flag.FlagSet // the running settings
	cfg  *config
	conn *connLog // nil: the connection log was off at start
	b    *broker.Broker
	log  *slog.Logger
}

// runtimeKeys are the settings SIGHUP applies; apply sets each.
var runtimeKeys = map[string]bool{
	"log-level": true, "log-connections-rate": true,
	"ban-threshold": true, "ban-window": true, "ban-duration": true, "ban-max-tracked": true,
	"max-pending-auth-per-ip": true,
}

// reload re-reads the settings and applies them; it returns the keys
// applied and those that need a restart (for tests).
func (r *reloader) reload() (applied, restart []string) {
	next := new(config)
	fs := newFlagSet(next)
	fs.SetOutput(io.Discard)
	if _, err := loadConfig(fs, r.args, os.Environ(), next); err != nil {
		r.log.Error("SIGHUP: settings not reloaded; the running ones stay", "file", r.cfg.configFile, "err", err)
		return nil, nil
	}
	level, err := parseLevel(next.logLevel)
	if err != nil {
		r.log.Error("SIGHUP: settings not reloaded; the running ones stay", "file", r.cfg.configFile, "err", err)
		return nil, nil
	}
	var changed []*flag.Flag
	r.fs.VisitAll(func(f *flag.Flag) {
		if nf := fs.Lookup(f.Name); nf != nil && nf.Value.String() != f.Value.String() {
			changed = append(changed, nf)
		}
	})
	bansChanged := false
	for _, nf := range changed {
		ok := runtimeKeys[nf.Name]
		if nf.Name == "log-connections-rate" && r.conn == nil {
			ok = false // not registered at start: no cost to turn back on
		}
		if !ok {
			restart = append(restart, nf.Name)
			continue
		}
		// The running settings take the new value, so that the next
		// SIGHUP compares against what is in force.
		_ = r.fs.Set(nf.Name, nf.Value.String())
		applied = append(applied, nf.Name)
		switch nf.Name {
		case "log-level":
			r.cfg.logging.level.Set(level)
		case "log-connections-rate":
			r.conn.setRate(next.logging.connRate)
		default:
			bansChanged = true
		}
	}
	if bansChanged {
		o := &r.cfg.opts
		r.b.SetBanPolicy(broker.BanPolicy{Threshold: o.BanThreshold, Window: o.BanWindow, Duration: o.BanDuration,
			MaxTracked: o.BanMaxTracked, MaxPendingAuthPerIP: o.MaxPendingAuthPerIP})
	}
	r.log.Info("SIGHUP: settings reloaded", "file", r.cfg.configFile, "applied", strings.Join(applied, ","))
	if len(restart) > 0 {
		r.log.Warn("SIGHUP: changed settings need a restart; their running values stay", "keys", strings.Join(restart, ","))
	}
	return applied, restart
}
