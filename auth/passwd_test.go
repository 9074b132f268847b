package auth

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// testdata/mosquitto.passwd was written by mosquitto_passwd 2.0.11
// (Debian): alice/secret ($7$), bob/hunter2 (-H sha512: $6$), and
// "carol smith" with a non-ASCII password containing spaces.
func TestPasswordsMosquittoFile(t *testing.T) {
	p, err := LoadPasswords("testdata/mosquitto.passwd")
	if err != nil {
		t.Fatal(err)
	}
	p.Seal()
	f := func(user, pass string, want bool) {
		t.Helper()
		if got := p.Check(user, []byte(pass)); got != want {
			t.Fatalf("Check(%q, %q) = %v; want %v", user, pass, got, want)
		}
	}
	f("alice", "secret", true)
	f("alice", "Secret", false)
	f("alice", "", false)
	f("bob", "hunter2", true)
	f("bob", "hunter3", false)
	f("carol smith", "pässwörd with spaces", true)
	f("carol", "pässwörd with spaces", false)
	f("mallory", "secret", false)
}

// TestPasswordsRealTool round-trips with the installed mosquitto_passwd:
// a file it writes is read by us, and a file we write (mcutie passwd's
// format) is accepted by it for an update (it rewrites the other lines
// as they are) — skipped where the tool is not installed.
func TestPasswordsRealTool(t *testing.T) {
	tool, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed (Debian package mosquitto)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "pw")
	if out, err := exec.Command(tool, "-c", "-b", path, "dave", "d4ve!").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEntry([]byte("ours"), DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	p.Set("erin", e)
	var buf bytes.Buffer
	if _, err := p.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// mosquitto_passwd parses the whole file to update one user.
	if out, err := exec.Command(tool, "-b", path, "frank", "fr4nk").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd on our file: %v: %s", err, out)
	}
	p, err = LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Seal()
	for _, c := range [][2]string{{"dave", "d4ve!"}, {"erin", "ours"}, {"frank", "fr4nk"}} {
		if !p.Check(c[0], []byte(c[1])) {
			t.Fatalf("%s does not verify after the round trip", c[0])
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e, err := NewEntry([]byte("pw"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	s := e.String()
	if !strings.HasPrefix(s, "$7$1000$") {
		t.Fatalf("entry %q", s)
	}
	e2, err := ParseEntry(s)
	if err != nil {
		t.Fatal(err)
	}
	if !e2.Verify([]byte("pw")) || e2.Verify([]byte("pW")) {
		t.Fatal("round-tripped entry verifies wrongly")
	}
}

func TestParseEntryErrors(t *testing.T) {
	f := func(s string) {
		t.Helper()
		if _, err := ParseEntry(s); err == nil {
			t.Fatalf("ParseEntry(%q) accepted", s)
		}
	}
	f("plaintext")
	f("$5$abc$def")
	f("$7$0$qmZRdn4/SKogE7Wx$sA1MOcRQ71Ny8grU/0glh1BcNIO1wruzvsMkdkSsPHU4ytKX+EdG0Pshp6TisIKJXo8SfS0o/W2bcax8maK+gw==")
	f("$7$99999999999$qmZRdn4/SKogE7Wx$sA1MOcRQ71Ny8grU/0glh1BcNIO1wruzvsMkdkSsPHU4ytKX+EdG0Pshp6TisIKJXo8SfS0o/W2bcax8maK+gw==")
	f("$7$101$!!!$sA1MOcRQ71Ny8grU/0glh1BcNIO1wruzvsMkdkSsPHU4ytKX+EdG0Pshp6TisIKJXo8SfS0o/W2bcax8maK+gw==")
	f("$7$101$qmZRdn4/SKogE7Wx$c2hvcnQ=")
	f("$6$onlysalt")
	if _, err := ParsePasswords(strings.NewReader("alice:$7$101$x$y\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("error does not name the line: %v", err)
	}
}

func TestPasswordsFromEnv(t *testing.T) {
	line, _ := os.ReadFile("testdata/mosquitto.passwd")
	first := strings.SplitN(string(line), "\n", 2)[0] // alice:$7$…
	env := []string{
		"HOME=/root",
		EnvUsers + "=" + first,
		EnvUserPrefix + "gus=plain pass",
		EnvUserPrefix + "hal=" + strings.SplitN(first, ":", 2)[1], // alice's hash, for hal
	}
	p, used, err := PasswordsFromEnv(env, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(used) != 3 {
		t.Fatalf("used %v", used)
	}
	p.Seal()
	for _, c := range [][2]string{{"alice", "secret"}, {"gus", "plain pass"}, {"hal", "secret"}} {
		if !p.Check(c[0], []byte(c[1])) {
			t.Fatalf("%s does not verify", c[0])
		}
	}
	if p, _, err := PasswordsFromEnv([]string{"PATH=/bin"}, 10); p != nil || err != nil {
		t.Fatalf("no variables: %v %v", p, err)
	}
	if _, _, err := PasswordsFromEnv([]string{EnvUsers + "=nocolon"}, 10); err == nil {
		t.Fatal("bad MCUTIE_USERS accepted")
	}
}

// TestPasswordsFromEnvEmptyValue: MCUTIE_USER_<name>= with nothing after
// it (what an unset ${SECRET} expands to) is refused with an error naming
// the variable, instead of a user whose password is empty.
func TestPasswordsFromEnvEmptyValue(t *testing.T) {
	p, _, err := PasswordsFromEnv([]string{"HOME=/root", EnvUserPrefix + "gus=ok", EnvUserPrefix + "sensor1="}, 10)
	if err == nil {
		p.Seal()
		t.Fatalf("empty MCUTIE_USER_sensor1 accepted (empty password verifies: %v)", p.Check("sensor1", nil))
	}
	if !strings.Contains(err.Error(), EnvUserPrefix+"sensor1") || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("error does not name the variable: %v", err)
	}
}

// TestPasswordAuthenticator: verdicts come from the worker goroutines;
// a full queue answers Server busy at once; after Close, Server
// unavailable (no panic).
func TestPasswordAuthenticator(t *testing.T) {
	p, err := LoadPasswords("testdata/mosquitto.passwd")
	if err != nil {
		t.Fatal(err)
	}
	a := NewPasswordAuthenticator(p, 1, 1)
	ask := func(user, pass string) codec.ReasonCode {
		ch := make(chan broker.AuthResult, 1)
		a.Authenticate(&broker.AuthRequest{Username: user, HasUsername: true, Password: []byte(pass), HasPassword: true}, func(r broker.AuthResult) { ch <- r })
		return (<-ch).Code
	}
	if c := ask("alice", "secret"); c != codec.Success {
		t.Fatalf("alice: %#x", c)
	}
	if c := ask("alice", "nope"); c != codec.BadUserNameOrPassword {
		t.Fatalf("wrong password: %#x", c)
	}
	if c := ask("bob", ""); c != codec.BadUserNameOrPassword {
		t.Fatalf("empty password: %#x", c)
	}
	// Fill the one-slot queue behind a busy worker: some request must be
	// refused at once with Server busy.
	results := make(chan codec.ReasonCode, 16)
	for i := 0; i < 16; i++ {
		a.Authenticate(&broker.AuthRequest{Username: "alice", HasUsername: true, Password: []byte("secret"), HasPassword: true},
			func(r broker.AuthResult) { results <- r.Code })
	}
	busy := 0
	for i := 0; i < 16; i++ {
		if <-results == codec.ServerBusy {
			busy++
		}
	}
	if busy == 0 || a.QueueFull.Load() != uint64(busy) {
		t.Fatalf("busy %d, counted %d", busy, a.QueueFull.Load())
	}
	a.Close()
	if c := ask("alice", "secret"); c != codec.ServerUnavailable {
		t.Fatalf("after Close: %#x", c)
	}
	if c := ask("x", "y"); c != codec.ServerUnavailable {
		t.Fatalf("after Close: %#x", c)
	}
}

// TestNewSHA512Entry: a $6$ entry (mosquitto_passwd -H sha512's format)
// parses back and verifies only its password.
func TestNewSHA512Entry(t *testing.T) {
	e, err := NewSHA512Entry([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s := e.String()
	if !strings.HasPrefix(s, "$6$") || strings.Count(s, "$") != 3 {
		t.Fatalf("entry %q", s)
	}
	back, err := ParseEntry(s)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Verify([]byte("pw")) || back.Verify([]byte("pW")) {
		t.Fatal("$6$ entry does not verify as made")
	}
}
