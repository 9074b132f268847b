package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
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

// bridges are the bridges of --bridges (none without it).
type bridges struct {
	cfgs []bridge.Config
	file string
	m    atomic.Pointer[bridge.Manager] // set once started
}

// loadBridges reads and checks --bridges (before the listeners start:
// a bad file stops the start) and adds the bridges' metrics to the
// /metrics writers (cfg.hookMetrics, read by serve). code is the exit
// code when it ends the run (-1: go on).
func loadBridges(cfg *config) (*bridges, int) {
	bs := &bridges{file: cfg.bridges.file}
	if bs.file == "" {
		return bs, -1
	}
	cfgs, err := bridge.Load(bs.file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return nil, 2
	}
	bs.cfgs = cfgs
	cfg.hookMetrics = append(cfg.hookMetrics, func(w io.Writer) { bs.m.Load().WriteMetrics(w) })
	return bs, -1
}

// start starts the bridges on b, whose loops must be running (serve). A
// remote that is down is no error: it is retried with backoff.
func (bs *bridges) start(b *broker.Broker, log *slog.Logger) int {
	if len(bs.cfgs) == 0 {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := bridge.Start(ctx, b, bs.cfgs, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcutie:", err)
		return 2
	}
	bs.m.Store(m)
	names := make([]string, 0, len(bs.cfgs))
	for _, c := range bs.cfgs {
		names = append(names, c.Name+"="+c.Address)
	}
	log.Info("bridges started", "file", bs.file, "bridges", names)
	return -1
}

// stop stops the bridges (their local sessions keep what the remotes
// have not acknowledged).
func (bs *bridges) stop() { bs.m.Load().Stop() }
