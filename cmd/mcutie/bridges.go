package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mcutie/mcutie/bridge"
	"github.com/mcutie/mcutie/broker"
)

// bridgesConfig holds --bridges: a YAML file of bridges to other MQTT
// brokers, like --plugins a file of its own (a list of structured
// entries does not fit flags); see docs/bridges.md.
type bridgesConfig struct {
	file string
}

func bridgesFlags(fs *flag.FlagSet, c *bridgesConfig) {
	fs.StringVar(&c.file, "bridges", "", "YAML file of bridges to other MQTT brokers (Mosquitto-style topic mappings in/out/both, MQTT 5 or 3.1.1, TLS); see docs/bridges.md (empty: none)")
}

// bridges are the running bridges (none without --bridges).
type bridges struct {
	m *bridge.Manager
}

// startBridges reads --bridges and starts the bridges on b; their metrics
// join the /metrics writers (cfg.hookMetrics, read by serve). code is the
// exit code when it ends the run (-1: go on). A remote that is down is
// no error: it is retried with backoff.
func startBridges(cfg *config, b *broker.Broker, log *slog.Logger) (*bridges, int) {
	if cfg.bridges.file == "" {
		return &bridges{}, -1
	}
	cfgs, err := bridge.Load(cfg.bridges.file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return nil, 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := bridge.Start(ctx, b, cfgs, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return nil, 2
	}
	cfg.hookMetrics = append(cfg.hookMetrics, m.WriteMetrics)
	names := make([]string, 0, len(cfgs))
	for _, c := range cfgs {
		names = append(names, c.Name+"="+c.Address)
	}
	log.Info("bridges started", "file", cfg.bridges.file, "bridges", names)
	return &bridges{m: m}, -1
}

// stop stops the bridges (their local sessions keep what the remotes
// have not acknowledged).
func (bs *bridges) stop() {
	if bs != nil {
		bs.m.Stop()
	}
}
