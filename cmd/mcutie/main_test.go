package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFileSetsFlagsCommandLineWins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcutie.yaml")
	yaml := "max-inflight: 100\nlisten:\n  - tcp://127.0.0.1:1884\n  - tcp://127.0.0.1:1885\nmax-keepalive: 30\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse([]string{"--config", path, "--max-keepalive", "60"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if cfg.maxInflight != 100 {
		t.Fatalf("max-inflight = %d, want 100 from the file", cfg.maxInflight)
	}
	if cfg.maxKeepAlive != 60 {
		t.Fatalf("max-keepalive = %d, want 60 from the command line", cfg.maxKeepAlive)
	}
	if got := cfg.listen.String(); got != "tcp://127.0.0.1:1884,tcp://127.0.0.1:1885" {
		t.Fatalf("listen = %q", got)
	}
}

func TestConfigFileUnknownKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("max-inflite: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	err := applyConfigFile(fs, path)
	if err == nil || !strings.Contains(err.Error(), "max-inflite") {
		t.Fatalf("want an error naming the unknown key, got %v", err)
	}
}

func TestProfileFillsUnsetFlagsOnly(t *testing.T) {
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse([]string{"--gogc", "77"}); err != nil {
		t.Fatal(err)
	}
	if err := applyProfile(fs, "low-memory"); err != nil {
		t.Fatal(err)
	}
	if cfg.gogc != 77 || cfg.writeBufferCap != 4<<10 {
		t.Fatalf("gogc=%d writeBufferCap=%d", cfg.gogc, cfg.writeBufferCap)
	}
	if err := applyProfile(fs, "nope"); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

// TestHelpListsEveryFlag: every flag appears in --help with its default.
func TestHelpListsEveryFlag(t *testing.T) {
	var cfg config
	fs := newFlagSet(&cfg)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, name := range []string{"listen", "loops", "data-dir", "store", "durability", "metrics-listen", "log-level", "config", "max-packet-size", "max-inflight", "max-queued-messages", "profile", "memory-limit"} {
		if !strings.Contains(out.String(), "-"+name) {
			t.Errorf("--help does not list --%s", name)
		}
	}
	if code := run([]string{"--help"}); code != 0 {
		t.Fatalf("--help exit code %d, want 0", code)
	}
}
