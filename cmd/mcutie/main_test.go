package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/broker"
)

func TestConfigFileSetsFlagsCommandLineWins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcutie.yaml")
	yaml := "max-inflight: 100\nsys-interval: 30s\nlisten:\n  - tcp://127.0.0.1:1884\n  - tcp://127.0.0.1:1885\nmax-keepalive: 30\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse([]string{"--config", path, "--max-keepalive", "60"}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if cfg.maxInflight != 100 {
		t.Fatalf("max-inflight = %d, want 100 from the file", cfg.maxInflight)
	}
	if cfg.sysInterval != 30*time.Second {
		t.Fatalf("sys-interval = %v, want 30s from the file", cfg.sysInterval)
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
	_, err := applyConfigFile(fs, path)
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

// TestPasswdSubcommand: mcutie passwd creates, updates and deletes users
// in a file the auth package (and mosquitto_passwd) reads; a password
// from standard input works like -b.
func TestPasswdSubcommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	var out, errb bytes.Buffer
	f := func(stdin string, args ...string) int {
		t.Helper()
		errb.Reset()
		return runPasswd(args, strings.NewReader(stdin), &out, &errb)
	}
	if c := f("", "-c", "-b", path, "ann", "one"); c != 0 {
		t.Fatalf("create: %d %s", c, errb.String())
	}
	if c := f("two\n", path, "ben"); c != 0 {
		t.Fatalf("add from stdin: %d %s", c, errb.String())
	}
	if c := f("", "-b", "-iterations", "500", path, "ann", "uno"); c != 0 {
		t.Fatalf("update: %d %s", c, errb.String())
	}
	p, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Seal()
	if !p.Check("ann", []byte("uno")) || p.Check("ann", []byte("one")) || !p.Check("ben", []byte("two")) {
		t.Fatal("entries do not verify as written")
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), "ann:$7$500$") || !strings.Contains(string(raw), "ben:$7$101$") {
		t.Fatalf("file:\n%s", raw)
	}
	if c := f("", "-D", path, "ben"); c != 0 {
		t.Fatalf("delete: %d %s", c, errb.String())
	}
	if c := f("", "-D", path, "ben"); c == 0 || !strings.Contains(errb.String(), "not in") {
		t.Fatalf("deleting a missing user: %d %s", c, errb.String())
	}
	if c := f("", "-b", path, "a:b", "x"); c == 0 {
		t.Fatal("a user name with ':' accepted")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v %v", fi.Mode(), err)
	}
}

func TestLocalOnly(t *testing.T) {
	f := func(want bool, listen ...string) {
		t.Helper()
		if got, why := localOnly(listen); got != want || (!got && why == "") {
			t.Fatalf("localOnly(%v) = %v %q; want %v", listen, got, why, want)
		}
	}
	f(true, "tcp://127.0.0.1:1883")
	f(true, "tcp://127.0.0.1:1883", "tcp6://[::1]:1883", "tcp://localhost:1884", "tls://127.0.0.1:8883")
	f(true, "tcp://127.0.0.1:1883?proxy=false")
	f(false, "tcp://0.0.0.0:1883")
	f(false, "tcp://127.0.0.1:1883", "tcp://:1884")
	f(false, "tcp://192.168.1.2:1883")
	// Loopback, yet carrying traffic from elsewhere (issue 21 item 15).
	f(false, "tcp://127.0.0.1:1883?proxy=true")
	f(false, "tcp://127.0.0.1:1883", "ws://127.0.0.1:8080/mqtt")
	f(false, "wss://localhost:8443")
}

// TestSecurityDefaults: anonymous access follows the listeners and the
// credentials unless --allow-anonymous is given; users from the
// environment are merged.
func TestSecurityDefaults(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := func(listen []string, anon, given bool, env []string, wantDeny, wantAuth bool) {
		t.Helper()
		cfg := config{listen: listen, allowAnonymous: anon}
		var o broker.Options
		s, err := setupSecurity(&cfg, given, env, &o, log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		if o.DenyAnonymous != wantDeny || (o.Authenticator != nil) != wantAuth {
			t.Fatalf("%v anon=%v given=%v env=%v: deny %v auth %v", listen, anon, given, env, o.DenyAnonymous, o.Authenticator != nil)
		}
	}
	f([]string{"tcp://127.0.0.1:1883"}, false, false, nil, false, false)
	f([]string{"tcp://0.0.0.0:1883"}, false, false, nil, true, true)
	f([]string{"tcp://0.0.0.0:1883"}, true, true, nil, false, false)
	f([]string{"tcp://127.0.0.1:1883"}, false, true, nil, true, true)
	// Credentials configured: anonymous off by default, even on loopback.
	f([]string{"tcp://127.0.0.1:1883"}, false, false, []string{"MCUTIE_USER_zed=pw"}, true, true)
	f([]string{"tcp://127.0.0.1:1883"}, true, true, []string{"MCUTIE_USER_zed=pw"}, false, true)
}

// TestAnonymousOffForForwardedListeners (issue 21 item 15): a loopback
// listener that takes the PROXY protocol, or a loopback WebSocket one
// behind a reverse proxy, carries clients from elsewhere: anonymous access
// is off by default, the log says why, and --allow-anonymous still wins.
func TestAnonymousOffForForwardedListeners(t *testing.T) {
	for _, listen := range [][]string{
		{"tcp://127.0.0.1:1883?proxy=true"},
		{"tcp://127.0.0.1:1883", "ws://127.0.0.1:8080/mqtt"},
		{"wss://127.0.0.1:8443/mqtt"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		var o broker.Options
		s, err := setupSecurity(&config{listen: listen}, false, nil, &o, log)
		if err != nil {
			t.Fatal(err)
		}
		s.close()
		if !o.DenyAnonymous || o.Authenticator == nil {
			t.Fatalf("%v: anonymous access on by default", listen)
		}
		if !strings.Contains(buf.String(), "anonymous access off") || !strings.Contains(buf.String(), listen[len(listen)-1]) {
			t.Fatalf("%v: log does not say why:\n%s", listen, buf.String())
		}
		o = broker.Options{}
		s, err = setupSecurity(&config{listen: listen, allowAnonymous: true}, true, nil, &o, log)
		if err != nil {
			t.Fatal(err)
		}
		s.close()
		if o.DenyAnonymous {
			t.Fatalf("%v: --allow-anonymous given, yet anonymous access off", listen)
		}
	}
	// Credentials configured on a plain loopback listener: off too.
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if code := runPasswd([]string{"-c", "-b", pw, "alice", "secret"}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
		t.Fatalf("passwd exit %d", code)
	}
	var o broker.Options
	s, err := setupSecurity(&config{listen: []string{"tcp://127.0.0.1:1883"}, passwordFile: pw}, false, nil, &o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.close()
	if !o.DenyAnonymous {
		t.Fatal("anonymous access on by default with a password file")
	}
}

// TestClientIDPrefixUserWiring (issue 21 item 10): --client-id-prefix-user
// puts the binder in front of the password check and turns anonymous
// access off (an anonymous client has no user to bind to); an explicit
// --allow-anonymous with it is a start-up error.
func TestClientIDPrefixUserWiring(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var o broker.Options
	cfg := config{listen: []string{"tcp://127.0.0.1:1883"}, clientIDPrefixUser: true}
	s, err := setupSecurity(&cfg, false, []string{"MCUTIE_USER_bob=pw"}, &o, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, ok := o.Authenticator.(*auth.ClientIDBinder); !ok || !o.DenyAnonymous {
		t.Fatalf("authenticator %T, deny anonymous %v", o.Authenticator, o.DenyAnonymous)
	}
	got := make(chan broker.AuthResult, 1)
	o.Authenticator.Authenticate(&broker.AuthRequest{ClientID: "alice", Username: "bob", HasUsername: true, Password: []byte("pw"), HasPassword: true}, func(r broker.AuthResult) { got <- r })
	if r := <-got; r.Code != 0x85 {
		t.Fatalf("bob as client alice: code %#x", byte(r.Code))
	}
	o.Authenticator.Authenticate(&broker.AuthRequest{ClientID: "bob:1", Username: "bob", HasUsername: true, Password: []byte("pw"), HasPassword: true}, func(r broker.AuthResult) { got <- r })
	if r := <-got; r.Code != 0 {
		t.Fatalf("bob as client bob:1: code %#x", byte(r.Code))
	}
	cfg.allowAnonymous = true
	if _, err := setupSecurity(&cfg, true, nil, &broker.Options{}, log); err == nil || !strings.Contains(err.Error(), "client-id-prefix-user") {
		t.Fatalf("--allow-anonymous with --client-id-prefix-user: %v", err)
	}
}

// TestWarnACLUsersUnauthenticated (issue 21 item 23): an ACL naming users
// while user names are taken on trust (anonymous on, no users) is warned
// about at start; with users configured it is not.
func TestWarnACLUsersUnauthenticated(t *testing.T) {
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte("user alice\ntopic readwrite alice/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(cfg config, env []string) string {
		t.Helper()
		var buf bytes.Buffer
		var o broker.Options
		cfg.aclFile = acl
		s, err := setupSecurity(&cfg, cfg.allowAnonymous, env, &o, slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s.close()
		return buf.String()
	}
	const warn = "user names are not authenticated"
	if out := run(config{listen: []string{"tcp://127.0.0.1:1883"}}, nil); !strings.Contains(out, warn) || !strings.Contains(out, "level=WARN") {
		t.Fatalf("no warning, loopback default:\n%s", out)
	}
	if out := run(config{listen: []string{"tcp://0.0.0.0:1883"}, allowAnonymous: true}, nil); !strings.Contains(out, warn) {
		t.Fatalf("no warning with --allow-anonymous:\n%s", out)
	}
	if out := run(config{listen: []string{"tcp://0.0.0.0:1883"}, allowAnonymous: true}, []string{"MCUTIE_USER_alice=pw"}); strings.Contains(out, warn) {
		t.Fatalf("warning although users are checked:\n%s", out)
	}
	if err := os.WriteFile(acl, []byte("topic read public/#\npattern readwrite devices/%c/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(config{listen: []string{"tcp://127.0.0.1:1883"}}, nil); strings.Contains(out, warn) {
		t.Fatalf("warning for an ACL that names no user:\n%s", out)
	}
}

// TestConfigFileSecurityKeys: the security flags are config keys too.
func TestConfigFileSecurityKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcutie.yaml")
	yaml := "password-file: /etc/mcutie/passwd\nacl-file: /etc/mcutie/acl\nallow-anonymous: false\nban-threshold: 5\nban-window: 30s\nban-duration: 1h\nauth-timeout: 2s\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	if _, err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if cfg.passwordFile != "/etc/mcutie/passwd" || cfg.aclFile != "/etc/mcutie/acl" || cfg.opts.BanThreshold != 5 ||
		cfg.opts.BanWindow.String() != "30s" || cfg.opts.BanDuration.String() != "1h0m0s" || cfg.opts.AuthTimeout.String() != "2s" {
		t.Fatalf("cfg %+v", cfg)
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "allow-anonymous" })
	if !given {
		t.Fatal("allow-anonymous from the file does not count as given (the loopback default would override it)")
	}
}

// TestRunServesProbesAndMetrics runs the binary's main path with a Badger
// store: /readyz turns 200 once it listens, /metrics carries the broker's,
// the store's and the process's metrics, and SIGTERM stops it with exit 0.
func TestRunServesProbesAndMetrics(t *testing.T) {
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"--listen", "tcp://" + mqttAddr, "--metrics-listen", httpAddr, "--data-dir", t.TempDir(),
			"--sys-interval", "100ms", "--log-level", "error", "--loops", "2"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 10s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A connection moves the counters; a $SYS round counts itself.
	nc, err := net.Dial("tcp", mqttAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var body string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, "\nmcutie_connections 1\n") && !strings.Contains(body, "\nmcutie_sys_messages_published_total 0\n") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"\nmcutie_connections 1\n", "\nmcutie_store_commit_seconds_count ", "\nmcutie_store_queue_capacity ",
		"\ngo_goroutines ", "\nprocess_cpu_seconds_user_total ", `mcutie_loop_inbox_length{loop="1"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	// The connection log is a hook: its registry's families once, not
	// once by the broker and again by the command.
	if n := strings.Count(body, `mcutie_hook_calls_total{hook="connlog",event="connected"}`); n != 1 {
		t.Errorf("the connection log's hook calls appear %d times in /metrics, want 1", n)
	}
	if strings.Contains(body, "\nmcutie_sys_messages_published_total 0\n") {
		t.Error("no $SYS round within 10s at --sys-interval 100ms")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", c)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of SIGTERM")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestLimitKeysReachBrokerOptions: every limit of the "Limits" table in
// docs/security.md is a config file key (and so a flag) that reaches
// broker.Options.
func TestLimitKeysReachBrokerOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.yaml")
	yaml := `max-connections: 1000
max-connections-per-ip: 20
connection-rate-per-ip: 5
connection-burst-per-ip: 10
max-client-id-length: 64
min-keepalive: 5
max-keepalive: 300
max-subscriptions: 50
max-queued-bytes: 1048576
publish-rate: 100
publish-burst: 200
publish-byte-rate: 65536
publish-byte-burst: 131072
connect-timeout: 3s
max-packet-size: 65536
max-topic-length: 256
max-topic-levels: 16
max-inflight: 32
max-queued-messages: 500
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	if _, err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	o := brokerOptions(&cfg)
	got := fmt.Sprintf("%d %d %g %d %d %d %d %d %d %g %d %g %d %v %d %d %d %d %d",
		o.MaxConnections, o.MaxConnectionsPerIP, o.ConnectRatePerIP, o.ConnectBurstPerIP, o.MaxClientIDLength,
		o.MinKeepAlive, o.MaxKeepAlive, o.MaxSubscriptions, o.MaxQueuedBytes, o.PublishRate, o.PublishBurst,
		o.PublishByteRate, o.PublishByteBurst, o.ConnectTimeout, o.MaxPacketSize, o.MaxTopicLength, o.MaxTopicLevels,
		o.MaxInflight, o.MaxQueued)
	want := "1000 20 5 10 64 5 300 50 1048576 100 200 65536 131072 3s 65536 256 16 32 500"
	if got != want {
		t.Fatalf("options from the config file:\n got %s\nwant %s", got, want)
	}
}

// TestReadmeSecureConfigParses: the internet-facing configuration shown in
// docs/security.md (moved there from the README) is a valid config file.
func TestReadmeSecureConfigParses(t *testing.T) {
	readme, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "A configuration for a broker facing the internet")
	if !ok {
		t.Fatal("docs/security.md has no internet-facing configuration")
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	path := filepath.Join(t.TempDir(), "secure.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config
	fs := newFlagSet(&cfg)
	if _, err := applyConfigFile(fs, path); err != nil {
		t.Fatalf("docs/security.md configuration: %v", err)
	}
	if o := brokerOptions(&cfg); o.MaxConnectionsPerIP == 0 || o.PublishRate == 0 || o.MaxKeepAlive == 0 {
		t.Fatalf("docs/security.md configuration sets no limits: %+v", o)
	}
}
