// Package redistest starts a private redis-server for tests: on a loopback
// port, with its data in a temporary directory, killed when the test ends.
// Tests that call Start are skipped, with a message saying how to install
// it, when the redis-server binary is absent.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options choose the server's persistence.
type Options struct {
	// AOF turns the append-only file on (appendonly yes).
	AOF bool
	// Fsync is appendfsync: "always", "everysec" (default) or "no".
	Fsync string
}

// Server is one redis-server process, restartable on the same port and
// directory.
type Server struct {
	Addr string
	Dir  string
	Port int
	opt  Options
	cmd  *exec.Cmd
	exit chan struct{}
	log  string
}

// Binary returns the path of redis-server, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	return ""
}

// Start starts a redis-server for t, or skips t when there is none. The
// server is killed at the end of the test.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if Binary() == "" {
		t.Skip("redis-server is not installed (Debian: apt-get install -y redis-server); skipping the Redis test")
	}
	if o.Fsync == "" {
		o.Fsync = "everysec"
	}
	s := &Server{Dir: t.TempDir(), Port: FreePort(t), opt: o}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
	s.log = filepath.Join(s.Dir, "redis.log")
	t.Cleanup(func() { s.Kill(t) })
	s.Restart(t)
	return s
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Restart starts the server again (after Kill or Stop) on the same port
// and directory, and waits until it answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	aof := "no"
	if s.opt.AOF {
		aof = "yes"
	}
	cmd := exec.Command(Binary(), "--port", fmt.Sprint(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", aof, "--appendfsync", s.opt.Fsync, "--daemonize", "no",
		"--logfile", s.log, "--protected-mode", "no")
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.exit = cmd, make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { _ = c.Wait(); close(ch) }(cmd, s.exit)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := ping(s.Addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not ready within 20s (%v); its log:\n%s", s.Addr, err, s.Log())
		}
		select {
		case <-s.exit:
			t.Fatalf("redis-server exited during start-up; its log:\n%s", s.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to end. Killing a
// stopped server is harmless.
func (s *Server) Kill(t testing.TB) { s.signal(t, syscall.SIGKILL) }

// Stop sends SIGTERM (Redis writes its append-only file and exits) and waits.
func (s *Server) Stop(t testing.TB) { s.signal(t, syscall.SIGTERM) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exit:
	default:
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.exit:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exit
			t.Errorf("redis-server did not exit within 15s of %v", sig)
		}
	}
	s.cmd = nil
}

// Log returns the server's log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// ping sends PING and expects PONG; a loading server (-LOADING) is not ready.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("EXISTS mcutie-redistest-probe\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, ":") {
		return fmt.Errorf("redis answered %q", strings.TrimSpace(line))
	}
	return nil
}
