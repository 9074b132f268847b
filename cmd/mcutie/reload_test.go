package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// SIGHUP re-reads the --config file of a running mcutie: a file that does
// not load is logged and changes nothing; a good one applies the log
// level and the ban policy at once (a ban threshold turned on bans the
// next guesser), names the changed settings that need a restart, and the
// broker keeps serving throughout.
func TestSIGHUPReloadsConfigFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if c := runPasswd([]string{"-c", "-b", pw, "ann", "secret"}, strings.NewReader(""), io.Discard, io.Discard); c != 0 {
		t.Fatal("mcutie passwd failed")
	}
	addr := freeAddr(t)
	cfgFile := filepath.Join(dir, "mcutie.yaml")
	base := "listen: [tcp://" + addr + "]\nstore: memory\nmetrics-listen: \"\"\npassword-file: " + pw + "\nlog-format: json\n"
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfgFile, []byte(base+s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ban-threshold: 0\nmax-inflight: 100\n")
	p := startMcutie(t, nil, "--config", cfgFile)
	p.waitLine("mcutie started")
	hup := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	answer := func(pass string) int {
		t.Helper()
		code, nc := rawConnect(t, addr, "c1", "ann", pass)
		if nc != nil {
			nc.Close()
		}
		return code
	}
	// No bans at ban-threshold 0.
	for range 3 {
		if c := answer("wrong"); c != 4 {
			t.Fatalf("wrong password: CONNACK %d, want 4 (bad user name or password)", c)
		}
	}

	// A bad file: logged with its key, nothing changes, still serving.
	write("ban-threshold: 2\nmax-inflight: lots\n")
	hup()
	bad := p.waitLine("settings not reloaded")
	if !strings.Contains(bad, `key \"max-inflight\": want an integer of 0 or more, got \"lots\"`) || !strings.Contains(bad, `"level":"ERROR"`) {
		t.Fatalf("bad file on SIGHUP: %s", bad)
	}
	if c := answer("wrong"); c != 4 {
		t.Fatalf("after a bad reload: CONNACK %d, want 4 (ban-threshold still 0)", c)
	}
	if c := answer("secret"); c != 0 {
		t.Fatalf("after a bad reload: CONNACK %d, want 0", c)
	}
	if strings.Contains(p.log(), `"level":"DEBUG"`) {
		t.Fatal("debug lines at log-level info")
	}

	// A good file: ban policy and log level applied, max-inflight needs a
	// restart.
	write("ban-threshold: 2\nban-duration: 1h\nlog-level: debug\nlog-connections-rate: 50\nmax-inflight: 200\n")
	hup()
	applied := p.waitLine("SIGHUP: settings reloaded")
	for _, k := range []string{"log-level", "ban-threshold", "ban-duration", "log-connections-rate"} {
		if !strings.Contains(applied, k) {
			t.Errorf("applied line lacks %s: %s", k, applied)
		}
	}
	if strings.Contains(applied, "max-inflight") {
		t.Errorf("max-inflight reported applied: %s", applied)
	}
	restart := p.waitLine("need a restart")
	if !strings.Contains(restart, `"keys":"max-inflight"`) || !strings.Contains(restart, `"level":"WARN"`) {
		t.Fatalf("restart line: %s", restart)
	}
	// log-level debug is in force: a connection logs the broker's debug
	// line.
	if c := answer("secret"); c != 0 {
		t.Fatalf("CONNACK %d, want 0", c)
	}
	p.waitLine(`"level":"DEBUG","msg":"client connected"`)
	// Two failures now ban the address: the third attempt, with the
	// right password, is closed at accept without a CONNACK.
	for range 2 {
		if c := answer("wrong"); c != 4 {
			t.Fatalf("wrong password: CONNACK %d, want 4", c)
		}
	}
	p.waitLine("banned source address")
	if c := answer("secret"); c != -1 {
		t.Fatalf("banned address: CONNACK %d, want the connection closed without one", c)
	}

	// The same file again: nothing applied, max-inflight still pending.
	hup()
	if l := p.waitLine("SIGHUP: settings reloaded"); !strings.Contains(l, `"applied":""`) {
		t.Errorf("second SIGHUP applied something: %s", l)
	}
	p.waitLine("need a restart")
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
