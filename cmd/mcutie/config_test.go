package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadFor runs loadConfig as mcutie does at start on args, environ and a
// config file holding yaml ("" for none).
func loadFor(t *testing.T, yaml string, environ []string, args ...string) (*config, loaded, error) {
	t.Helper()
	if yaml != "" {
		path := filepath.Join(t.TempDir(), "mcutie.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	}
	cfg := new(config)
	fs := newFlagSet(cfg)
	fs.SetOutput(new(strings.Builder))
	ld, err := loadConfig(fs, args, environ, cfg)
	return cfg, ld, err
}

// The command line wins over the environment, which wins over the config
// file, which wins over the default; a list comes from a comma-separated
// variable; the variables of other meaning are left alone, and an unknown
// MCUTIE_ variable is reported, not refused.
func TestConfigPrecedence(t *testing.T) {
	yaml := "max-inflight: 10\nmax-queued-messages: 20\nmax-subscriptions: 30\nlog-level: debug\n"
	env := []string{
		"MCUTIE_MAX_INFLIGHT=11", "MCUTIE_MAX_QUEUED_MESSAGES=21",
		"MCUTIE_LISTEN=tcp://127.0.0.1:1884, tcp://127.0.0.1:1885",
		"MCUTIE_USERS=ann:x", "MCUTIE_USER_bob=y", "MCUTIE_REDIS_PASSWORD=z",
		"MCUTIE_MAX_INFLITE=3", "HOME=/root",
	}
	cfg, ld, err := loadFor(t, yaml, env, "--max-inflight", "12")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.maxInflight != 12 || cfg.opts.MaxQueued != 21 || cfg.opts.MaxSubscriptions != 30 || cfg.opts.MaxTopicLevels != 128 {
		t.Fatalf("max-inflight %d (want 12: command line), max-queued-messages %d (want 21: environment), max-subscriptions %d (want 30: file), max-topic-levels %d (want 128: default)",
			cfg.maxInflight, cfg.opts.MaxQueued, cfg.opts.MaxSubscriptions, cfg.opts.MaxTopicLevels)
	}
	if got := cfg.listen.String(); got != "tcp://127.0.0.1:1884,tcp://127.0.0.1:1885" {
		t.Fatalf("listen from MCUTIE_LISTEN = %q", got)
	}
	if cfg.redis.password != "" {
		t.Fatal("MCUTIE_REDIS_PASSWORD set --redis-password: it is the fallback behind --redis-password-file")
	}
	if ld.fileKeys != 2 {
		t.Errorf("the file set %d keys, want 2 (max-inflight and max-queued-messages were given elsewhere)", ld.fileKeys)
	}
	if strings.Join(ld.unknown, ",") != "MCUTIE_MAX_INFLITE" {
		t.Errorf("unknown variables %v, want [MCUTIE_MAX_INFLITE]", ld.unknown)
	}
	if len(ld.env) != 2 { // MCUTIE_MAX_QUEUED_MESSAGES, MCUTIE_LISTEN; MCUTIE_MAX_INFLIGHT lost to the command line
		t.Errorf("variables used %v, want 2", ld.env)
	}
}

// A bad value names its key (or variable or flag), what was wanted and
// what was given; a bound is refused with the bound, never cut to it.
func TestConfigErrorsNameKeyTypeAndValue(t *testing.T) {
	for _, c := range []struct {
		yaml string
		env  []string
		args []string
		want string
	}{
		{yaml: "max-inflight: lots\n", want: `key "max-inflight": want an integer of 0 or more, got "lots"`},
		{yaml: "max-connections: many\n", want: `key "max-connections": want an integer, got "many"`},
		{yaml: "connect-timeout: 10\n", want: `key "connect-timeout": "10": a duration needs a unit, e.g. 10s`},
		{yaml: "auth-timeout: soon\n", want: `key "auth-timeout": want a duration such as 10s, 500ms or 5m, got "soon"`},
		{yaml: "max-packet-size: huge\n", want: `key "max-packet-size": want a size in bytes such as 65536, 64KiB, 1MiB or 1GB, got "huge"`},
		{yaml: "pprof: maybe\n", want: `key "pprof": want true or false, got "maybe"`},
		{yaml: "publish-rate: fast\n", want: `key "publish-rate": want a number, got "fast"`},
		{env: []string{"MCUTIE_MAX_INFLIGHT=lots"}, want: `environment MCUTIE_MAX_INFLIGHT: want an integer of 0 or more, got "lots"`},
		{args: []string{"--max-inflight", "lots"}, want: `flag --max-inflight: want an integer of 0 or more, got "lots"`},
		{args: []string{"--connect-timeout", "10"}, want: `flag --connect-timeout: "10": a duration needs a unit, e.g. 10s`},
		{yaml: "max-inflight: 70000\n", want: "--max-inflight 70000: want 1 to 65535"},
		{yaml: "max-inflight: 0\n", want: "--max-inflight 0: want 1 to 65535"},
		{args: []string{"--max-keepalive", "65536"}, want: "--max-keepalive 65536: want 0 to 65535"},
		{args: []string{"--topic-alias-maximum", "65536"}, want: "--topic-alias-maximum 65536: want 0 to 65535"},
		{args: []string{"--max-session-expiry", "4294967296"}, want: "--max-session-expiry 4294967296: want 0 to 4294967295"},
		{args: []string{"--max-topic-length", "65536"}, want: "--max-topic-length 65536: want 1 to 65535"},
		{args: []string{"--max-client-id-length", "10"}, want: "--max-client-id-length 10: want 23"},
		{args: []string{"--min-keepalive", "60", "--max-keepalive", "30"}, want: "--min-keepalive 60: want at most --max-keepalive 30"},
		{args: []string{"--inbox-size", "0"}, want: "--inbox-size 0: want at least 1"},
		{args: []string{"--sys-interval", "-1s"}, want: "--sys-interval -1e+09: want 0 or more"},
		{args: []string{"--connect-timeout", "0s"}, want: "--connect-timeout 0s: want a positive duration"},
		{args: []string{"--max-packet-size", "1GiB"}, want: "--max-packet-size 1073741824: want 2 to 268435460"},
	} {
		_, _, err := loadFor(t, c.yaml, c.env, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v %v: got %v, want an error with %q", c.yaml, c.env, c.args, err, c.want)
		}
	}
}

// Every byte-sized setting takes units, in flags, variables and the file.
func TestByteSizes(t *testing.T) {
	_, _, err := loadFor(t, "max-queued-bytes: 1MiB\nmax-retained-bytes: 1GB\nmemory-limit: 512MiB\n",
		[]string{"MCUTIE_MAX_OUTBOUND_BYTES=64KiB"}, "--max-packet-size", "256KiB", "--publish-byte-rate", "1.5KiB", "--read-buffer-cap", "16k")
	if err == nil {
		t.Fatal("a fractional 1.5KiB accepted")
	}
	cfg, _, err := loadFor(t, "max-queued-bytes: 1MiB\nmax-retained-bytes: 1GB\nmemory-limit: 512MiB\n",
		[]string{"MCUTIE_MAX_OUTBOUND_BYTES=64KiB"}, "--max-packet-size", "256KiB", "--publish-byte-rate", "1500.5", "--read-buffer-cap", "16k")
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.opts
	if o.MaxQueuedBytes != 1<<20 || o.MaxRetainedBytes != 1e9 || cfg.memoryLimit != 512<<20 || o.MaxOutboundBytes != 64<<10 ||
		o.MaxPacketSize != 256<<10 || o.PublishByteRate != 1500.5 || cfg.readBufferCap != 16<<10 {
		t.Fatalf("sizes: queued %d retained %d memory %d outbound %d packet %d byte-rate %g read-buffer %d",
			o.MaxQueuedBytes, o.MaxRetainedBytes, cfg.memoryLimit, o.MaxOutboundBytes, o.MaxPacketSize, o.PublishByteRate, cfg.readBufferCap)
	}
	if _, _, err := loadFor(t, "", nil, "--max-queued-bytes-total", "9999999999GiB"); err == nil || !strings.Contains(err.Error(), "want a size") {
		t.Fatalf("an overflowing size: %v", err)
	}
}

// Every registered flag is in exactly one --help group, and every group
// names registered flags only: a flag added without a group fails here.
func TestHelpGroupsEveryFlag(t *testing.T) {
	var cfg config
	fs := newFlagSet(&cfg)
	seen := map[string]string{}
	for _, g := range helpGroups {
		for _, name := range g.flags {
			if prev, dup := seen[name]; dup {
				t.Errorf("--%s is in groups %q and %q", name, prev, g.title)
			}
			seen[name] = g.title
			if fs.Lookup(name) == nil {
				t.Errorf("group %q names --%s, which is not a flag", g.title, name)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := seen[f.Name]; !ok {
			t.Errorf("--%s has no group in helpGroups (cmd/mcutie/help.go): add it to its topic", f.Name)
		}
	})
}

// --help goes to stdout, exits 0, and shows every flag under its group
// with its default and its environment variable.
func TestHelpToStdoutGroupedWithDefaultsAndEnv(t *testing.T) {
	stdout, stderr, code := runMcutie(t, nil, "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("--help: exit %d, stderr %q", code, stderr)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	for _, g := range helpGroups {
		if !strings.Contains(stdout, "\n"+g.title+":\n") {
			t.Errorf("--help lacks the group %q", g.title)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		_, after, ok := strings.Cut(stdout, "\n  --"+f.Name)
		if !ok {
			t.Errorf("--help does not list --%s", f.Name)
			return
		}
		if after[0] != ' ' && after[0] != '\n' {
			_, after, _ = strings.Cut(after, "\n  --"+f.Name)
		}
		block, _, _ := strings.Cut(after, "\n  --")
		if !strings.Contains(block, "env "+envName(f.Name)) || !strings.Contains(block, "default ") {
			t.Errorf("--help's --%s lacks its default or env variable:\n%s", f.Name, block)
		}
	})
	if !strings.Contains(stdout, "default 1MiB, env MCUTIE_MAX_PACKET_SIZE") {
		t.Error("--help does not show --max-packet-size's default as a size")
	}
	// A usage error is one line on stderr pointing to --help.
	_, stderr, code = runMcutie(t, nil, "--no-such-flag")
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "see mcutie --help") {
		t.Fatalf("usage error: exit %d, stderr %q", code, stderr)
	}
}

// --log-format json writes one JSON object a line, and the first lines
// name the config file loaded and how many keys it set, then the
// environment variables used, and warn of an unknown MCUTIE_ variable.
func TestLogFormatJSONAndConfigNamedAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcutie.yaml")
	yaml := "store: memory\nmetrics-listen: \"\"\nlisten: [tcp://127.0.0.1:0]\nmax-inflight: 100\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startMcutie(t, []string{"MCUTIE_LOG_FORMAT=json", "MCUTIE_MAX_QUEUED_MESSAGES=500", "MCUTIE_NOPE=1"}, "--config", path)
	p.waitLine("mcutie started")
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(p.log(), "\n")
	var recs []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", l, err)
		}
		recs = append(recs, m)
	}
	if len(recs) < 3 {
		t.Fatalf("log:\n%s", p.log())
	}
	if recs[0]["msg"] != "config file loaded" || recs[0]["file"] != path || recs[0]["keys"] != float64(4) || recs[0]["level"] != "INFO" {
		t.Errorf("first line %v, want the config file and its 4 keys", recs[0])
	}
	if recs[1]["msg"] != "settings from the environment" || !strings.Contains(recs[1]["variables"].(string), "MCUTIE_MAX_QUEUED_MESSAGES") {
		t.Errorf("second line %v, want the environment variables used", recs[1])
	}
	if recs[2]["level"] != "WARN" || recs[2]["variable"] != "MCUTIE_NOPE" {
		t.Errorf("third line %v, want a warning naming MCUTIE_NOPE", recs[2])
	}
}

// Every flag has a row in docs/configuration.md.
func TestConfigurationDocListsEveryFlag(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg config
	newFlagSet(&cfg).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(raw), "| `--"+f.Name+"` |") {
			t.Errorf("docs/configuration.md has no row for --%s", f.Name)
		}
	})
}
