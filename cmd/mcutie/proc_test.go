package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// runMainEnv makes the test binary run main() instead of the tests: the
// tests that need a real mcutie process (signals, its log on stderr, its
// --help on stdout) start this binary again with it set.
const runMainEnv = "GO_TEST_RUN_MCUTIE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// childProc is a mcutie process started by a test, its stderr read line
// by line.
type childProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string // stderr, closed at EOF

	mu  sync.Mutex
	all []string
}

// startMcutie starts mcutie with args and the environment env (added to
// this process's, without its MCUTIE_ variables); the test's cleanup
// kills it if it is still running.
func startMcutie(t *testing.T, env []string, args ...string) *childProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, runMainEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &childProc{t: t, cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

// waitLine returns the next stderr line containing want, failing the
// test if none comes within 15 s or the process ends first.
func (p *childProc) waitLine(want string) string {
	p.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("mcutie ended before logging %q; its log:\n%s", want, p.log())
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-timeout:
			p.t.Fatalf("mcutie did not log %q within 15s; its log:\n%s", want, p.log())
		}
	}
}

// log is every stderr line read so far.
func (p *childProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.all, "\n")
}

// stop sends SIGTERM and waits for the exit status.
func (p *childProc) stop() int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() {
		for range p.lines { // drain, so the reader finishes
		}
		done <- p.cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		p.t.Fatalf("mcutie did not stop within 15s of SIGINT; its log:\n%s", p.log())
	}
	return p.cmd.ProcessState.ExitCode()
}

// runMcutie runs mcutie to its end and returns its stdout, stderr and
// exit status.
func runMcutie(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, runMainEnv+"=1"), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	err := cmd.Run()
	close(done)
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}
