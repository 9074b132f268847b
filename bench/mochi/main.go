// Command mochi starts github.com/mochi-mqtt/server/v2 with allow-all
// authentication on one TCP address, so `make bench-compare` can run the
// same scenarios against it as against mcutie and Mosquitto.
//
// It is its own Go module (bench/mochi/go.mod) on purpose: mochi-mqtt's
// go.mod requires Badger v4.2, Pebble, go-redis, bbolt, miniredis and
// testify. Inside mcutie's module they would join mcutie's module graph
// (go.mod, go.sum, `go list -m all`, vulnerability scans) though the broker
// never links them. As a nested module it is built only by the comparison
// (`cd bench/mochi && go build`), and `go build/vet/test ./...` and
// staticcheck in the root never see it.
//
// Settings: mochi's defaults (mqtt.NewDefaultServerCapabilities: receive
// maximum 1024, 8192 inflight and 8192 pending writes per client; $SYS
// every second), no persistence hook (all state in memory), log level warn.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "TCP address to listen on")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := mqtt.New(&mqtt.Options{Logger: log})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
	if err := srv.Serve(); err != nil { // Serve starts the listeners and returns
		fmt.Fprintln(os.Stderr, "mochi:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "mochi: listening on", *addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = srv.Close()
}
