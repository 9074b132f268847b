package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mcutie/mcutie/auth"
	"github.com/mcutie/mcutie/internal/testpki"
	"gopkg.in/yaml.v3"
)

// writeConf writes a Mosquitto config file into dir and returns its path.
func writeConf(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// settingsOf flattens a conversion into flag → values joined by ",".
func settingsOf(c *mosqConversion) map[string]string {
	m := map[string]string{}
	for _, s := range c.settings {
		m[s.flag] = strings.Join(s.values, ",")
	}
	return m
}

func optionsOf(fs []mosqFinding) []string {
	var o []string
	for _, f := range fs {
		o = append(o, f.option)
	}
	sort.Strings(o)
	return o
}

func TestIsMosquittoConf(t *testing.T) {
	f := func(path, text string, want bool) {
		t.Helper()
		if got := isMosquittoConf(path, []byte(text)); got != want {
			t.Fatalf("isMosquittoConf(%q, %q) = %v, want %v", path, text, got, want)
		}
	}
	f("mosquitto.conf", "listener 1883\nallow_anonymous true\n", true)
	f("broker.cfg", "# comment\nlistener 1883\n\npassword_file /etc/p\n", true)
	f("mcutie.yaml", "listen:\n  - tcp://127.0.0.1:1883\nmax-inflight: 10\n", false)
	f("mcutie.conf", "listen:\n  - tcp://127.0.0.1:1883\n", false) // YAML named .conf
	f("mcutie.yaml", "# only a comment\n", false)
	f("empty.conf", "# only a comment\n", true)
	f("x", "persistence true\r\npersistence_location /var/lib/mosquitto/\r\n", true) // CRLF
	f("x.yaml", "store: memory\nlog-level: debug\n", false)
}

// TestMosquittoConfMapping: each option's mapping, the Mosquitto 2
// defaults made explicit, and the warnings naming what is not carried over.
func TestMosquittoConfMapping(t *testing.T) {
	dir := t.TempDir()
	f := func(text string, want map[string]string, wantWarn ...string) *mosqConversion {
		t.Helper()
		c, err := convertMosquittoConf(writeConf(t, dir, "m.conf", text))
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		got := settingsOf(c)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q (all: %v)", text, k, got[k], v, got)
			}
		}
		if w := optionsOf(c.warnings); !reflect.DeepEqual(w, append([]string(nil), wantWarn...)) && !(len(w) == 0 && len(wantWarn) == 0) {
			t.Errorf("%q: warnings for %v, want %v: %v", text, w, wantWarn, c.warnings)
		}
		return c
	}
	// No listener: Mosquitto 2's local-only mode, anonymous on whatever
	// the file says; nothing persisted.
	f("allow_anonymous false\n", map[string]string{"listen": "tcp://127.0.0.1:1883", "allow-anonymous": "true", "store": "memory"})
	// A listener: anonymous off by default (mcutie's loopback default
	// would say on, so it is set explicitly).
	f("listener 1883 127.0.0.1\n", map[string]string{"listen": "tcp://127.0.0.1:1883", "allow-anonymous": "false"})
	f("listener 1883\nlistener 8080 ::1\nprotocol websockets\nallow_anonymous true\n",
		map[string]string{"listen": "tcp://:1883,ws://[::1]:8080/", "allow-anonymous": "true"})
	// port and bind_address make the default listener.
	f("port 1884\nbind_address 10.0.0.1\n", map[string]string{"listen": "tcp://10.0.0.1:1884"})
	f("port 1884\nlistener 9001\nprotocol websockets\n", map[string]string{"listen": "tcp://:1884,ws://:9001/"})
	// A listener option before any listener line makes the default
	// listener on 1883 (Mosquitto's config__parse_args).
	f("max_connections 10\nlistener 1884 127.0.0.1\n", map[string]string{"listen": "tcp://:1883,tcp://127.0.0.1:1884"}, "max_connections")
	// TLS and WebSocket over TLS share the one certificate.
	f("listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n"+
		"listener 8443 127.0.0.1\nprotocol websockets\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\nrequire_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n",
		map[string]string{"listen": "tls://:8883,wss://127.0.0.1:8443/", "tls-cert": "/c.pem", "tls-key": "/k.pem", "tls-client-ca": "/ca.pem",
			"tls-username-from-cn": "true", "tls-min-version": "1.3"})
	f("listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\n", map[string]string{"listen": "tls://:8883", "tls-client-ca": "", "tls-min-version": "1.2"})
	f("listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\ncapath /cas\nrequire_certificate true\n", map[string]string{"tls-client-ca": "/ca.pem"}, "capath")
	f("listener 1883\nsocket_domain ipv4\nlistener 1884\nsocket_domain ipv6\n", map[string]string{"listen": "tcp4://0.0.0.0:1883,tcp6://:1884"})
	// Security, persistence, limits.
	f("listener 1883\npassword_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n",
		map[string]string{"password-file": "/etc/mosquitto/passwd", "acl-file": "/etc/mosquitto/acl", "allow-anonymous": "false"})
	f("persistence true\npersistence_location /var/lib/mosquitto/\n", map[string]string{"store": "badger", "data-dir": "/var/lib/mosquitto/"})
	f("persistence false\npersistence_location /var/lib/mosquitto/\n", map[string]string{"store": "memory", "data-dir": ""})
	f("max_inflight_messages 10\nmax_queued_messages 100\nmax_queued_bytes 65536\nmax_keepalive 120\nsys_interval 0\nmax_packet_size 300000\nmessage_size_limit 1000\npersistent_client_expiration 2d\nmemory_limit 100000000\n",
		map[string]string{"max-inflight": "10", "max-queued-messages": "110", "max-queued-bytes": "65536", "max-keepalive": "120", "sys-interval": "0s",
			"max-packet-size": "300000", "max-session-expiry": "172800", "memory-limit": "100000000"})
	f("max_inflight_messages 0\nmax_queued_messages 5\n", map[string]string{"max-inflight": "65535", "max-queued-messages": "65540"})
	f("message_size_limit 4096\n", map[string]string{"max-packet-size": "5120"})
	f("max_queued_messages 0\n", map[string]string{"max-queued-messages": ""}, "max_queued_messages")
	f("listener 1883\nmax_connections 10\nlistener 1884\nmax_connections 5\n", map[string]string{"max-connections": "15"})
	f("listener 1883\nmax_connections 10\nlistener 1884\n", map[string]string{"max-connections": ""}, "max_connections")
	f("listener 1883\nmax_connections 0\n  # indented comment\n", map[string]string{"max-connections": ""}) // 0: no limit in Mosquitto too
	f("connection_messages false\n", map[string]string{"log-connections-rate": "0"})
	f("connection_messages true\n", map[string]string{"log-connections-rate": "100"})
	f("listener 1883\nmax_topic_alias 5\nlistener 1884\nmax_topic_alias 20\n", map[string]string{"topic-alias-maximum": "5"})
	// Not carried over: each named, with its line.
	c := f("pid_file /run/mosquitto.pid\nlog_dest file /var/log/mosquitto.log\nlog_type all\nuser mosquitto\nno_such_option 1\nauth_opt_x y\n"+
		"connection_messages true\ncheck_retain_source false\nallow_zero_length_clientid false\nconnection b1\naddress 10.0.0.2:1883\ntopic # both 0\n",
		nil, "address", "allow_zero_length_clientid", "auth_opt_x", "connection", "log_dest", "log_type", "no_such_option", "pid_file", "topic", "user")
	for _, w := range c.warnings {
		if w.line == 0 || w.why == "" || w.file == "" {
			t.Errorf("warning without a line or reason: %+v", w)
		}
	}
	// per_listener_settings with equal settings is carried over.
	f("per_listener_settings true\nlistener 1883\npassword_file /p\nallow_anonymous false\nlistener 1884\npassword_file /p\nallow_anonymous false\n",
		map[string]string{"password-file": "/p", "allow-anonymous": "false", "listen": "tcp://:1883,tcp://:1884"})
}

// TestMosquittoConfRefused: what mcutie cannot run as Mosquitto would is
// refused, the error naming the line and why.
func TestMosquittoConfRefused(t *testing.T) {
	dir := t.TempDir()
	f := func(text string, wantInError ...string) {
		t.Helper()
		_, err := convertMosquittoConf(writeConf(t, dir, "r.conf", text))
		if err == nil {
			t.Fatalf("%q accepted", text)
		}
		for _, w := range wantInError {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", text, err, w)
			}
		}
	}
	f("listener 8883\ncertfile /a.pem\nkeyfile /a.key\nlistener 8884\ncertfile /b.pem\nkeyfile /b.key\n", "r.conf:4", "certfile/keyfile", "listener at line 1", "one TLS configuration")
	f("listener 8883\ncertfile /a.pem\nkeyfile /a.key\nrequire_certificate true\ncafile /ca\nlistener 8884\ncertfile /a.pem\nkeyfile /a.key\n", "require_certificate")
	f("per_listener_settings true\nlistener 1883\npassword_file /p\nlistener 1884\nallow_anonymous true\n", "per_listener_settings", "password_file")
	f("per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884\n", "allow_anonymous")
	f("password_file /p\nper_listener_settings true\n", "before any other security option")
	f("listener 1883\nmount_point tenant/\n", "r.conf:2", "mount_point")
	f("listener 8883\ncertfile /a\nkeyfile /b\ncrlfile /crl\n", "crlfile", "revocation")
	f("listener 1883\nbind_interface eth0\n", "bind_interface")
	f("listener 8883\npsk_hint x\n", "psk_hint")
	f("listener 8883\ncertfile /a\n", "keyfile")
	f("listener 0\n", "Unix socket path")
	f("listener 0 /run/m.sock\n", "no listener mcutie can serve")
	f("listener 1883\npassword_file /a\npassword_file /b\n", "given twice")
	f("persistence maybe\n", "not a boolean")
	f("max_keepalive 5\n", "10 to 65535")
	f("listener 99999\n", "bad port")
}

// TestMosquittoConfIncludeDir: include_dir files are read in Mosquitto's
// order (a later one wins), each starting with the default listener
// current; an include_dir inside an included file is ignored, with a
// warning.
func TestMosquittoConfIncludeDir(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	writeConf(t, inc, "b.conf", "sys_interval 30\n")
	writeConf(t, inc, "B.conf", "sys_interval 20\ninclude_dir /nowhere\n")
	writeConf(t, inc, "a.conf", "listener 1885 127.0.0.1\nallow_anonymous true\n")
	writeConf(t, inc, "README", "not a config\n")
	main := writeConf(t, dir, "mosquitto.conf", "listener 1884 127.0.0.1\ninclude_dir "+inc+"\n")
	c, err := convertMosquittoConf(main)
	if err != nil {
		t.Fatal(err)
	}
	got := settingsOf(c)
	if got["listen"] != "tcp://127.0.0.1:1884,tcp://127.0.0.1:1885" || got["sys-interval"] != "30s" || got["allow-anonymous"] != "true" {
		t.Fatalf("settings %v", got)
	}
	if w := optionsOf(c.warnings); !reflect.DeepEqual(w, []string{"include_dir"}) || !strings.HasSuffix(c.warnings[0].file, "B.conf") {
		t.Fatalf("warnings %v", c.warnings)
	}
	names := []string{"b.conf", "a.conf", "01.conf", "B.conf", "A.conf", "00.conf"}
	sort.Slice(names, func(i, j int) bool { return mosqIncludeLess(names[i], names[j]) })
	if strings.Join(names, " ") != "00.conf 01.conf A.conf a.conf B.conf b.conf" {
		t.Fatalf("include order %v (mosquitto.conf(5) gives 00 01 A a B b)", names)
	}
}

// applyBoth returns the config and given flags that --config sets from a
// Mosquitto file, and those from the YAML convert-mosquitto-conf makes of
// it.
func applyBoth(t *testing.T, confPath string) (direct, viaYAML config, givenDirect, givenYAML []string, yamlText string) {
	t.Helper()
	given := func(fs *flag.FlagSet) []string {
		var g []string
		fs.Visit(func(f *flag.Flag) { g = append(g, f.Name) })
		return g
	}
	fs := newFlagSet(&direct)
	var log bytes.Buffer
	if err := applyMosquittoConf(fs, confPath, &log); err != nil {
		t.Fatal(err)
	}
	givenDirect = given(fs)
	var out, errb bytes.Buffer
	yamlPath := filepath.Join(t.TempDir(), "converted.yaml")
	if code := runConvertMosquittoConf([]string{"-o", yamlPath, confPath}, &out, &errb); code != 0 {
		t.Fatalf("convert exit %d: %s", code, errb.String())
	}
	raw, err := os.ReadFile(yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("converted YAML does not parse: %v\n%s", err, raw)
	}
	fs2 := newFlagSet(&viaYAML)
	if _, err := applyConfigFile(fs2, yamlPath); err != nil {
		t.Fatalf("converted YAML refused by --config: %v\n%s", err, raw)
	}
	return direct, viaYAML, givenDirect, given(fs2), string(raw)
}

// TestConvertMosquittoConfRoundTrip: the YAML convert-mosquitto-conf
// prints parses back with --config into the same settings as the
// Mosquitto file itself, and names every option not carried over.
func TestConvertMosquittoConfRoundTrip(t *testing.T) {
	dir := t.TempDir()
	confs := map[string]string{
		"local.conf": "pid_file /run/mosquitto/mosquitto.pid\npersistence true\npersistence_location /var/lib/mosquitto/\nlog_dest file /var/log/mosquitto/mosquitto.log\n",
		"full.conf": `# A production-like broker
per_listener_settings false
listener 1883 127.0.0.1
listener 8883
certfile /etc/mosquitto/certs/server.pem
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/ca_certificates/ca.pem
require_certificate true
use_identity_as_username true
listener 8443
protocol websockets
certfile /etc/mosquitto/certs/server.pem
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/ca_certificates/ca.pem
require_certificate true
use_identity_as_username true
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
persistence true
persistence_location /var/lib/mosquitto/
autosave_interval 60
max_inflight_messages 40
max_queued_messages 2000
max_packet_size 262144
max_keepalive 300
sys_interval 15
persistent_client_expiration 1w
log_type error
log_type warning
connection_messages true
user mosquitto
connection cloud
address cloud.example.com:8883
topic sensors/# out 1
`,
	}
	for name, text := range confs {
		path := writeConf(t, dir, name, text)
		direct, viaYAML, g1, g2, out := applyBoth(t, path)
		if !reflect.DeepEqual(direct, viaYAML) {
			t.Errorf("%s: settings differ:\n direct %+v\n   yaml %+v\n%s", name, direct, viaYAML, out)
		}
		sort.Strings(g1)
		sort.Strings(g2)
		if !reflect.DeepEqual(g1, g2) {
			t.Errorf("%s: flags set differ: direct %v, yaml %v", name, g1, g2)
		}
		conv, err := convertMosquittoConf(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range conv.warnings {
			if !strings.Contains(out, fmt.Sprintf("%s:%d: %s:", w.file, w.line, w.option)) {
				t.Errorf("%s: the YAML does not name %s at line %d:\n%s", name, w.option, w.line, out)
			}
		}
	}
	// Spot checks of the full one.
	direct, _, _, _, _ := applyBoth(t, filepath.Join(dir, "full.conf"))
	if direct.listen.String() != "tcp://127.0.0.1:1883,tls://:8883,wss://:8443/" || direct.tlsClientCA != "/etc/mosquitto/ca_certificates/ca.pem" ||
		!direct.tlsUsernameFromCN || direct.maxInflight != 40 || direct.opts.MaxQueued != 2040 || direct.opts.MaxPacketSize != 262144 ||
		direct.maxKeepAlive != 300 || direct.sysInterval != 15*time.Second || direct.maxSessionExpiry != 604800 || direct.storeKind != "badger" ||
		direct.dataDir != "/var/lib/mosquitto/" || direct.passwordFile != "/etc/mosquitto/passwd" || direct.aclFile != "/etc/mosquitto/acl" || direct.allowAnonymous {
		t.Fatalf("full.conf: %+v", direct)
	}
}

// TestMosquittoConfCommandLineWins: flags on the command line win over
// the Mosquitto file, as over a YAML one; warnings are logged at start.
func TestMosquittoConfCommandLineWins(t *testing.T) {
	path := writeConf(t, t.TempDir(), "m.conf", "listener 1883\nmax_keepalive 100\npid_file /x\n")
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse([]string{"--max-keepalive", "60", "--listen", "tcp://127.0.0.1:2000"}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := applyMosquittoConf(fs, path, &log); err != nil {
		t.Fatal(err)
	}
	if cfg.maxKeepAlive != 60 || cfg.listen.String() != "tcp://127.0.0.1:2000" {
		t.Fatalf("keepalive %d listen %v", cfg.maxKeepAlive, cfg.listen)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "option=pid_file") || !strings.Contains(log.String(), "line=3") {
		t.Fatalf("no warning naming pid_file at line 3:\n%s", log.String())
	}
	// --log-level error keeps them quiet.
	fs = newFlagSet(&config{})
	if err := fs.Parse([]string{"--log-level", "error"}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if err := applyMosquittoConf(fs, path, &log); err != nil {
		t.Fatal(err)
	}
	if log.Len() != 0 {
		t.Fatalf("logged at --log-level error:\n%s", log.String())
	}
	// --log-format json: JSON lines, as the rest of the log.
	fs = newFlagSet(&config{})
	if err := fs.Parse([]string{"--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	log.Reset()
	if err := applyMosquittoConf(fs, path, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(log.String(), "{") || !strings.Contains(log.String(), `"option":"pid_file"`) {
		t.Fatalf("not JSON lines:\n%s", log.String())
	}
}

// mcutieProc is mcutie's run() started by a test.
type mcutieProc struct {
	exit chan int
	done bool
}

// startMcutieRun runs mcutie with args in this process and waits until
// addr takes TCP connections. stop (also at cleanup) sends SIGTERM and
// waits for the exit.
func startMcutieRun(t *testing.T, addr string, args ...string) (stop func()) {
	t.Helper()
	p := &mcutieProc{exit: make(chan int, 1)}
	go func() { p.exit <- run(args) }()
	waitListening(t, addr, p.exit)
	stop = func() {
		if p.done {
			return
		}
		p.done = true
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-p.exit:
			if c != 0 {
				t.Errorf("mcutie exit code %d", c)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("mcutie did not stop within 15s of SIGTERM")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitListening waits (10s at most) until addr accepts TCP connections,
// failing the test if exit (nil: not watched) reports an exit first.
func waitListening(t *testing.T, addr string, exit <-chan int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case code := <-exit:
			t.Fatalf("exited with %d before listening on %s", code, addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectAnswer connects with paho 3.1.1 to broker (a paho URL) and
// returns "accepted" or "refused <code>".
func connectAnswer(t *testing.T, broker, user, pass string, tc *tls.Config) string {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("c-%s-%d", user, time.Now().UnixNano())).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetTLSConfig(tc)
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("%s user %q: no CONNACK within 15s", broker, user)
	}
	if tok.Error() == nil {
		c.Disconnect(0)
		return "accepted"
	}
	return fmt.Sprintf("refused %d", tok.(*mqtt.ConnectToken).ReturnCode())
}

// mosquittoPasswd runs the real mosquitto_passwd (skipping the test where
// it is not installed).
func mosquittoPasswd(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed (Debian package mosquitto)")
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
	}
}

// securityFiles writes a password file made by mosquitto_passwd (alice
// with PBKDF2, bob with -H sha512) and an ACL file into dir.
func securityFiles(t *testing.T, dir string) (passwd, acl string) {
	t.Helper()
	passwd, acl = filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	mosquittoPasswd(t, "-c", "-b", passwd, "alice", "alice-pw")
	mosquittoPasswd(t, "-H", "sha512", "-b", passwd, "bob", "bob-pw")
	rules := "user alice\ntopic readwrite alice/#\ntopic read public/#\n\nuser bob\ntopic readwrite bob/#\ntopic write public/#\n"
	if err := os.WriteFile(acl, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return passwd, acl
}

// rootLine is "user root" when the test runs as root: Mosquitto started
// as root otherwise switches to the mosquitto user, who cannot read the
// test's files. mcutie warns about it as about any user line.
func rootLine() string {
	if os.Geteuid() == 0 {
		return "user root\n"
	}
	return ""
}

// TestMosquittoConfRunsDebianDefault runs Debian's own
// /etc/mosquitto/mosquitto.conf (local-only, persistence under
// /var/lib/mosquitto) with the listener and data directory moved by
// command-line flags: an anonymous local client is let in, as Mosquitto
// 2 lets it in.
func TestMosquittoConfRunsDebianDefault(t *testing.T) {
	const debian = "/etc/mosquitto/mosquitto.conf"
	if _, err := os.Stat(debian); err != nil {
		t.Skipf("%s not present (Debian package mosquitto)", debian)
	}
	conv, err := convertMosquittoConf(debian)
	if err != nil {
		t.Fatal(err)
	}
	got := settingsOf(conv)
	if got["allow-anonymous"] != "true" || got["listen"] != "tcp://127.0.0.1:1883" || got["store"] != "badger" || got["data-dir"] != "/var/lib/mosquitto/" {
		t.Fatalf("Debian default: %v", got)
	}
	addr := freeAddr(t)
	startMcutieRun(t, addr, "--config", debian, "--listen", "tcp://"+addr, "--data-dir", t.TempDir(), "--metrics-listen", "", "--log-level", "error")
	if a := connectAnswer(t, "tcp://"+addr, "", "", nil); a != "accepted" {
		t.Fatalf("anonymous local client: %s", a)
	}
}

// TestMosquittoConfRunsListeners runs a Mosquitto config with a TCP, a
// WebSocket and a TLS listener, a password file made by mosquitto_passwd
// and allow_anonymous false: paho clients get the answers Mosquitto would
// give on each.
func TestMosquittoConfRunsListeners(t *testing.T) {
	dir := t.TempDir()
	passwd, acl := securityFiles(t, dir)
	pki := testpki.New(t)
	tcpAddr, wsAddr, tlsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	conf := writeConf(t, dir, "mosquitto.conf", fmt.Sprintf(`# listeners
listener %s 127.0.0.1
listener %s 127.0.0.1
protocol websockets
listener %s 127.0.0.1
certfile %s
keyfile %s

allow_anonymous false
password_file %s
acl_file %s
pid_file /run/mosquitto/mosquitto.pid
`, port(tcpAddr), port(wsAddr), port(tlsAddr), pki.ServerCert, pki.ServerKey, passwd, acl))
	startMcutieRun(t, tcpAddr, "--config", conf, "--metrics-listen", "", "--log-level", "error")
	waitListening(t, wsAddr, nil)
	waitListening(t, tlsAddr, nil)
	tc := pki.ClientTLS(t, "", "")
	for _, b := range []struct {
		url string
		tc  *tls.Config
	}{{"tcp://" + tcpAddr, nil}, {"ws://" + wsAddr + "/mqtt", nil}, {"ws://" + wsAddr + "/", nil}, {"ssl://" + tlsAddr, tc}} {
		for _, c := range []struct{ user, pass, want string }{
			{"alice", "alice-pw", "accepted"},
			{"bob", "bob-pw", "accepted"}, // a $6$ entry (mosquitto_passwd -H sha512)
			{"alice", "wrong", "refused"},
			{"nobody", "x", "refused"},
			{"", "", "refused"},
		} {
			if got := connectAnswer(t, b.url, c.user, c.pass, b.tc); !strings.HasPrefix(got, c.want) {
				t.Errorf("%s user %q: %s, want %s", b.url, c.user, got, c.want)
			}
		}
	}
}

// mosquittoBroker is the real Mosquitto broker started by a test.
type mosquittoBroker struct {
	cmd *exec.Cmd
	log bytes.Buffer
	mu  sync.Mutex
}

// startMosquitto starts `mosquitto -c conf` and waits until addr takes
// connections; it is stopped (SIGTERM, then killed after 10s) by the
// returned function and at cleanup.
func startMosquitto(t *testing.T, conf, addr string) (stop func()) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/mosquitto"); err2 != nil {
			t.Skip("mosquitto not installed (Debian package mosquitto)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	m := &mosquittoBroker{cmd: exec.CommandContext(ctx, bin, "-c", conf)}
	m.cmd.Stdout, m.cmd.Stderr = &lockedWriter{w: &m.log, mu: &m.mu}, &lockedWriter{w: &m.log, mu: &m.mu}
	m.cmd.Cancel = func() error { return m.cmd.Process.Signal(syscall.SIGTERM) }
	m.cmd.WaitDelay = 10 * time.Second
	if err := m.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan int, 1)
	waitErr := make(chan error, 1)
	go func() {
		err := m.cmd.Wait()
		waitErr <- err
		exited <- m.cmd.ProcessState.ExitCode()
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel() // SIGTERM, SIGKILL after WaitDelay
		select {
		case <-waitErr:
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Error("mosquitto did not stop")
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return stop
		}
		select {
		case code := <-exited:
			m.mu.Lock()
			defer m.mu.Unlock()
			t.Fatalf("mosquitto exited with %d before listening:\n%s", code, m.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s after 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// aclAnswers checks the ACL as a broker applies it: alice subscribes to
// alice/# and public/#; bob publishes (QoS 1, in this order) to alice/x
// (bob may not write there), bob/x (alice may not read there) and
// public/x (allowed both ways). What alice receives before public/x, and
// public/x itself, is the answer.
func aclAnswers(t *testing.T, url string) string {
	t.Helper()
	got := make(chan string, 10)
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("acl-alice").SetUsername("alice").SetPassword("alice-pw").
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).SetCleanSession(true)
	alice := mqtt.NewClient(o)
	if tok := alice.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("alice: %v", tok.Error())
	}
	defer alice.Disconnect(0)
	// A subscription to bob/# too: the ACL must refuse reading it.
	tok := alice.SubscribeMultiple(map[string]byte{"alice/#": 1, "public/#": 1, "bob/#": 1}, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	ob := mqtt.NewClientOptions().AddBroker(url).SetClientID("acl-bob").SetUsername("bob").SetPassword("bob-pw").
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4)
	bob := mqtt.NewClient(ob)
	if tok := bob.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("bob: %v", tok.Error())
	}
	defer bob.Disconnect(0)
	for _, topic := range []string{"alice/x", "bob/x", "public/x"} {
		if tok := bob.Publish(topic, 1, false, "m"); !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("publish %s: no PUBACK", topic)
		}
	}
	var seen []string
	for {
		select {
		case topic := <-got:
			seen = append(seen, topic)
			if topic == "public/x" {
				return strings.Join(seen, " ")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("public/x not delivered within 10s (got %v)", seen)
		}
	}
}

// TestMosquittoParity runs the same Mosquitto config with the real
// `mosquitto -c` and with mcutie, one after the other on the same free
// loopback port, and compares the accept/refuse answers of a few clients
// and credentials (and what the ACL lets through). Skipped where Mosquitto
// is not installed.
func TestMosquittoParity(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
			t.Skip("mosquitto not installed (Debian package mosquitto)")
		}
	}
	dir := t.TempDir()
	passwd, acl := securityFiles(t, dir)
	// Plain-text files hashed by mcutie passwd -U: carol with -H sha512
	// ($6$), dave with the default ($7$); Mosquitto must take both.
	for _, u := range []struct{ line, hash string }{{"carol:carol-pw\n", "sha512"}, {"dave:dave-pw\n", "sha512-pbkdf2"}} {
		plain := filepath.Join(dir, "plain-"+u.hash)
		if err := os.WriteFile(plain, []byte(u.line), 0o600); err != nil {
			t.Fatal(err)
		}
		if code := runPasswd([]string{"-H", u.hash, "-U", plain}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
			t.Fatalf("mcutie passwd -U: %d", code)
		}
		hashed, _ := os.ReadFile(plain)
		f, err := os.OpenFile(passwd, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(hashed); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	cases := []struct{ user, pass string }{{"", ""}, {"alice", "alice-pw"}, {"alice", "wrong"}, {"bob", "bob-pw"}, {"carol", "carol-pw"}, {"dave", "dave-pw"}, {"nobody", "x"}}
	for _, anon := range []bool{false, true} {
		addr, wsAddr := freeAddr(t), freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		_, wsPort, _ := net.SplitHostPort(wsAddr)
		conf := writeConf(t, dir, fmt.Sprintf("parity-%v.conf", anon), fmt.Sprintf("%slistener %s 127.0.0.1\nlistener %s 127.0.0.1\nprotocol websockets\n"+
			"allow_anonymous %v\npassword_file %s\nacl_file %s\npersistence false\n", rootLine(), port, wsPort, anon, passwd, acl))
		// Both brokers take the WebSocket upgrade on any path.
		urls := []string{"tcp://" + addr, "ws://" + wsAddr + "/mqtt", "ws://" + wsAddr + "/"}
		answers := func() (s []string) {
			for _, u := range urls {
				for _, c := range cases {
					a := connectAnswer(t, u, c.user, c.pass, nil)
					s = append(s, fmt.Sprintf("%s %s/%s: %s", u[:strings.Index(u, ":")], c.user, c.pass, strings.Fields(a)[0]))
					t.Logf("anonymous %v, %s %q: %s", anon, u, c.user, a)
				}
			}
			return append(s, "acl: "+aclAnswers(t, "tcp://"+addr), "acl ws: "+aclAnswers(t, "ws://"+wsAddr+"/mqtt"))
		}
		stopMosq := startMosquitto(t, conf, addr)
		waitListening(t, wsAddr, nil)
		mosq := answers()
		stopMosq()
		stopMcutie := startMcutieRun(t, addr, "--config", conf, "--metrics-listen", "", "--log-level", "error")
		waitListening(t, wsAddr, nil)
		mine := answers()
		stopMcutie()
		if !reflect.DeepEqual(mosq, mine) {
			t.Errorf("allow_anonymous %v: answers differ\nmosquitto: %q\n   mcutie: %q", anon, mosq, mine)
		}
		var want []string
		for _, scheme := range []string{"tcp", "ws", "ws"} {
			first := "refused"
			if anon {
				first = "accepted"
			}
			want = append(want, scheme+" /: "+first, scheme+" alice/alice-pw: accepted", scheme+" alice/wrong: refused", scheme+" bob/bob-pw: accepted",
				scheme+" carol/carol-pw: accepted", scheme+" dave/dave-pw: accepted", scheme+" nobody/x: refused")
		}
		want = append(want, "acl: public/x", "acl ws: public/x")
		if !reflect.DeepEqual(mine, want) {
			t.Errorf("allow_anonymous %v: mcutie answers %q, want %q", anon, mine, want)
		}
	}
}

// TestPasswdUpdateAndHash: mcutie passwd -U hashes a plain-text file in
// place (comments and hashed entries kept), -H picks $6$ or $7$, and the
// entries verify; mosquitto_passwd -U's output is read as well.
func TestPasswdUpdateAndHash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pw")
	hashed, _ := auth.NewEntry([]byte("dan-pw"), 101)
	text := "# staff\nann:ann-pw\n ben : ben pw:with colon \n\ndan:" + hashed.String() + "\r\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if c := runPasswd([]string{"-U", path}, strings.NewReader(""), io.Discard, &errb); c != 0 {
		t.Fatalf("-U: %d %s", c, errb.String())
	}
	if !strings.Contains(errb.String(), "2 password(s) hashed, 1 already hashed") {
		t.Fatalf("-U report: %s", errb.String())
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), "# staff\nann:$7$101$") || !strings.Contains(string(raw), "\ndan:"+hashed.String()+"\r\n") {
		t.Fatalf("file after -U:\n%s", raw)
	}
	p, err := auth.LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Seal()
	if !p.Check("ann", []byte("ann-pw")) || !p.Check("ben", []byte("ben pw:with colon")) || !p.Check("dan", []byte("dan-pw")) {
		t.Fatal("hashed entries do not verify")
	}
	if c := runPasswd([]string{"-H", "sha512", "-b", path, "eve", "eve-pw"}, strings.NewReader(""), io.Discard, &errb); c != 0 {
		t.Fatalf("-H sha512: %d", c)
	}
	raw, _ = os.ReadFile(path)
	if !strings.Contains(string(raw), "eve:$6$") {
		t.Fatalf("-H sha512 did not write $6$:\n%s", raw)
	}
	f := func(want int, args ...string) {
		t.Helper()
		if c := runPasswd(args, strings.NewReader(""), io.Discard, io.Discard); c != want {
			t.Errorf("passwd %v: exit %d, want %d", args, c, want)
		}
	}
	f(2, "-H", "md5", "-b", path, "x", "y")
	f(2, "-U", "-c", path)
	f(2, "-U", path, "extra")
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(bad, []byte("ann:one\nnocolon\n"), 0o600)
	f(1, "-U", bad)
	if raw, _ := os.ReadFile(bad); string(raw) != "ann:one\nnocolon\n" {
		t.Fatal("a refused -U changed the file")
	}
	// mosquitto_passwd -U and -H sha512 files read by mcutie.
	mp := filepath.Join(dir, "mp")
	_ = os.WriteFile(mp, []byte("zoe:zoe-pw\n"), 0o600)
	mosquittoPasswd(t, "-U", mp)
	mosquittoPasswd(t, "-H", "sha512", "-b", mp, "yan", "yan-pw")
	q, err := auth.LoadPasswords(mp)
	if err != nil {
		t.Fatal(err)
	}
	q.Seal()
	if !q.Check("zoe", []byte("zoe-pw")) || !q.Check("yan", []byte("yan-pw")) {
		t.Fatal("mosquitto_passwd -U / -H sha512 entries do not verify")
	}
}

// TestConvertMosquittoConfCommand: the subcommand prints YAML to stdout,
// refuses with exit 1 and a reason, and wants one file.
func TestConvertMosquittoConfCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeConf(t, dir, "good.conf", "listener 1883\npid_file /x\n")
	var out, errb bytes.Buffer
	if c := runConvertMosquittoConf([]string{good}, &out, &errb); c != 0 || !strings.Contains(out.String(), "listen:\n  - \"tcp://:1883\"\n") ||
		!strings.Contains(out.String(), "# Not carried over:\n# - "+good+":2: pid_file:") {
		t.Fatalf("exit %d\n%s\n%s", c, out.String(), errb.String())
	}
	bad := writeConf(t, dir, "bad.conf", "listener 1883\nmount_point x/\n")
	errb.Reset()
	if c := runConvertMosquittoConf([]string{bad}, &out, &errb); c != 1 || !strings.Contains(errb.String(), "mount_point") {
		t.Fatalf("exit %d: %s", c, errb.String())
	}
	if c := runConvertMosquittoConf(nil, &out, io.Discard); c != 2 {
		t.Fatalf("no file: exit %d", c)
	}
	// --config refuses the same file with exit 2.
	if c := run([]string{"--config", bad, "--metrics-listen", ""}); c != 2 {
		t.Fatalf("run refused config: exit %d", c)
	}
}

// debianConfSHA256 is the sha256 of Debian 12's /etc/mosquitto/mosquitto.conf
// (mosquitto 2.0.11-1.2+deb12u2), the file docs/mosquitto.md converts.
const debianConfSHA256 = "0abbc666efc370c72f8a58537254d95f99b0d83a4dae741d22e01f0e259f1a78"

// TestMosquittoDocExample: the conversion of Debian's default config shown
// in docs/mosquitto.md is what convert-mosquitto-conf prints.
func TestMosquittoDocExample(t *testing.T) {
	const debian = "/etc/mosquitto/mosquitto.conf"
	raw, err := os.ReadFile(debian)
	if err != nil {
		t.Skipf("%s not present (Debian package mosquitto)", debian)
	}
	if fmt.Sprintf("%x", sha256.Sum256(raw)) != debianConfSHA256 {
		t.Skipf("%s is not Debian 12's default", debian)
	}
	doc, err := os.ReadFile("../../docs/mosquitto.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```yaml\n# mcutie configuration converted from the Mosquitto config "+debian)
	if !ok {
		t.Fatal("docs/mosquitto.md shows no conversion of " + debian)
	}
	block, _, _ = strings.Cut(block, "```")
	var out bytes.Buffer
	if c := runConvertMosquittoConf([]string{debian}, &out, io.Discard); c != 0 {
		t.Fatalf("exit %d", c)
	}
	if got := strings.TrimPrefix(out.String(), "# mcutie configuration converted from the Mosquitto config "+debian); got != block {
		t.Fatalf("docs/mosquitto.md shows\n%s\nconvert-mosquitto-conf prints\n%s", block, got)
	}
}

// TestMosquittoDocTableComplete: every option the converter knows has a
// row in docs/mosquitto.md's table.
func TestMosquittoDocTableComplete(t *testing.T) {
	doc, err := os.ReadFile("../../docs/mosquitto.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## Every option")
	var keys []string
	for k := range mosqKnown {
		keys = append(keys, k)
	}
	for k := range mosqNotCarried {
		keys = append(keys, k)
	}
	for k := range mosqBridgeOptions {
		if !strings.HasPrefix(k, "bridge_") && !strings.HasPrefix(k, "local_") && !strings.HasPrefix(k, "remote_") && !strings.HasPrefix(k, "notification") &&
			k != "clientid" && k != "username" && k != "password" {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if !strings.Contains(table, "`"+k+"`") {
			t.Errorf("docs/mosquitto.md's table has no row for %s", k)
		}
	}
}

// TestMosquittoParityCertIdentity: a TLS-only config whose listener takes
// the user name from the client certificate (require_certificate,
// use_identity_as_username) and has a password file: Mosquitto checks no
// password there, so mcutie is given anonymous access on and no password
// file (every client is named by a verified certificate). The same conf
// under `mosquitto -c` and mcutie: the same answers.
func TestMosquittoParityCertIdentity(t *testing.T) {
	dir := t.TempDir()
	passwd, acl := securityFiles(t, dir)
	pki := testpki.New(t)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := writeConf(t, dir, "mtls.conf", fmt.Sprintf("%slistener %s 127.0.0.1\ncertfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\nuse_identity_as_username true\n"+
		"allow_anonymous false\npassword_file %s\nacl_file %s\n", rootLine(), port, pki.ServerCert, pki.ServerKey, pki.CA, passwd, acl))
	conv, err := convertMosquittoConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	if got := settingsOf(conv); got["allow-anonymous"] != "true" || got["password-file"] != "" || got["tls-username-from-cn"] != "true" || got["tls-client-ca"] != pki.CA {
		t.Fatalf("settings %v", got)
	}
	withCert := pki.ClientTLS(t, pki.ClientCert, pki.ClientKey) // CN alice
	rogue := pki.ClientTLS(t, pki.RogueCert, pki.RogueKey)
	noCert := pki.ClientTLS(t, "", "")
	answers := func() (s []string) {
		for _, c := range []struct {
			name, user, pass string
			tc               *tls.Config
		}{{"cert alice, no user name", "", "", withCert}, {"cert alice as bob, wrong password", "bob", "x", withCert}, {"rogue CA", "alice", "alice-pw", rogue}, {"no certificate", "alice", "alice-pw", noCert}} {
			a := connectAnswer(t, "ssl://"+addr, c.user, c.pass, c.tc)
			t.Logf("%s: %s", c.name, a)
			s = append(s, c.name+": "+strings.Fields(a)[0])
		}
		return s
	}
	stop := startMosquitto(t, conf, addr)
	mosq := answers()
	stop()
	stopMcutie := startMcutieRun(t, addr, "--config", conf, "--metrics-listen", "", "--log-level", "error")
	mine := answers()
	stopMcutie()
	if !reflect.DeepEqual(mosq, mine) {
		t.Errorf("answers differ\nmosquitto: %q\n   mcutie: %q", mosq, mine)
	}
	if want := []string{"cert alice, no user name: accepted", "cert alice as bob, wrong password: accepted", "rogue CA: refused", "no certificate: refused"}; !reflect.DeepEqual(mine, want) {
		t.Errorf("mcutie answers %q, want %q", mine, want)
	}
}
