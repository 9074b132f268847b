package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcutie/mcutie/internal/cdp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashbench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	clients  int
	rate     int
	requests int
	loads    int
	dialers  int
	chromium string
}

func run() error {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/mcutie", "the mcutie binary (make build)")
	flag.IntVar(&o.clients, "clients", 10000, "MQTT connections held open during the measurement")
	flag.IntVar(&o.rate, "rate", 1000, "messages per second published to the clients' topics meanwhile (0: none)")
	flag.IntVar(&o.requests, "requests", 200, "sequential requests timed per API endpoint")
	flag.IntVar(&o.loads, "loads", 5, "dashboard page loads timed (the first with an empty cache)")
	flag.IntVar(&o.dialers, "dialers", 64, "connections opened concurrently while connecting the clients")
	flag.StringVar(&o.chromium, "chromium", cdp.Find(), "Chromium binary for the page loads (empty: no page loads)")
	flag.Parse()
	if o.clients < 1 || o.requests < 1 {
		return errors.New("--clients and --requests must be at least 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	br, err := startBroker(ctx, o.bin)
	if err != nil {
		return err
	}
	defer br.stop()

	// The clients.
	start := time.Now()
	conns, err := connectAll(ctx, br.mqtt, o.clients, o.dialers)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d clients connected and subscribed in %v\n", len(conns), time.Since(start).Round(time.Millisecond))

	api := &apiClient{base: "http://" + br.admin + "/api/v1/", token: br.token, hc: &http.Client{Timeout: 30 * time.Second}}
	var st struct {
		Connected     int `json:"connected"`
		Subscriptions int `json:"subscriptions"`
	}
	for time.Now().Before(start.Add(30 * time.Second)) { // the stats are a tick old
		if err := api.getJSON("stats", &st); err != nil {
			return err
		}
		if st.Connected >= o.clients {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Connected < o.clients {
		return fmt.Errorf("the broker reports %d connected clients, want %d", st.Connected, o.clients)
	}

	// Traffic to them meanwhile.
	stopPub := make(chan struct{})
	var published atomic.Uint64
	var pubDone sync.WaitGroup
	if o.rate > 0 {
		pc, err := connectOne(br.mqtt, "dashbench-publisher", "")
		if err != nil {
			return err
		}
		defer pc.Close()
		pubDone.Add(1)
		go func() {
			defer pubDone.Done()
			publish(pc, o.clients, o.rate, stopPub, &published)
		}()
	}

	id := fmt.Sprintf("dev-%06d", o.clients/2)
	endpoints := []struct{ name, path string }{
		{"stats", "stats"},
		{"clients, page 1 (50)", "clients?limit=50"},
		{"clients, page 100 (50)", "clients?limit=50&page=100"},
		{"clients, search", "clients?limit=50&match=" + id[:9]},
		{"one client", "clients/" + id},
		{"subscriptions, page 1 (50)", "subscriptions?limit=50"},
		{"listeners", "listeners"},
	}
	var rows []string
	for _, e := range endpoints {
		var d []time.Duration
		for i := 0; i < o.requests; i++ {
			t0 := time.Now()
			if err := api.getJSON(e.path, nil); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
			d = append(d, time.Since(t0))
		}
		rows = append(rows, fmt.Sprintf("| GET /api/v1/%s | %s |", e.path, quantiles(d)))
	}

	var loads []string
	if o.chromium != "" && o.loads > 0 {
		loads, err = pageLoads(ctx, o.chromium, "http://"+br.admin+"/", br.token, o.loads)
		if err != nil {
			return err
		}
	}
	close(stopPub)
	pubDone.Wait()

	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("\nload average at the end: %s", la) // the machine may be shared: read the figures with it
	}
	fmt.Printf("\n%d MQTT 3.1.1 connections (one subscription each), %d msg/s published to them (%d sent in all); %d requests per endpoint, one at a time\n\n",
		o.clients, o.rate, published.Load(), o.requests)
	fmt.Println("| request | p50 | p95 | p99 | max |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
	if len(loads) > 0 {
		fmt.Println()
		fmt.Println("| page load | DOMContentLoaded | overview tiles shown | clients table filled (50 rows) |")
		fmt.Println("|---|---:|---:|---:|")
		for _, l := range loads {
			fmt.Println(l)
		}
	}
	return nil
}

func quantiles(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) string {
		i := int(p * float64(len(d)-1))
		return fmtDur(d[i])
	}
	return strings.Join([]string{q(0.5), q(0.95), q(0.99), fmtDur(d[len(d)-1])}, " | ")
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
}

// ---- the broker ----

type broker struct {
	cmd             *exec.Cmd
	dir             string
	mqtt, ws, admin string
	token           string
	stderr          *strings.Builder
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startBroker(ctx context.Context, bin string) (*broker, error) {
	var b broker
	var err error
	for _, p := range []*string{&b.mqtt, &b.ws, &b.admin} {
		if *p, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	if b.dir, err = os.MkdirTemp("", "dashbench-"); err != nil {
		return nil, err
	}
	b.token = fmt.Sprintf("bench-%x", rand.Uint64())
	tokenFile := filepath.Join(b.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(b.token), 0o600); err != nil {
		return nil, err
	}
	b.cmd = exec.Command(bin, "--data-dir", filepath.Join(b.dir, "data"), "--metrics-listen", "",
		"--listen", "tcp://"+b.mqtt, "--listen", "ws://"+b.ws, "--allow-anonymous",
		"--admin-listen", b.admin, "--admin-token-file", tokenFile, "--log-level", "warn")
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	b.stderr = &strings.Builder{}
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w (make build first)", bin, err)
	}
	for {
		if c, err := net.Dial("tcp", b.admin); err == nil {
			c.Close()
			return &b, nil
		}
		select {
		case <-ctx.Done():
			b.stop()
			return nil, fmt.Errorf("%s did not start: %s", bin, b.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *broker) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(b.dir)
}

// ---- MQTT, by hand: CONNECT, SUBSCRIBE and PUBLISH of MQTT 3.1.1 ----

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendRemLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func packet(typ byte, body []byte) []byte {
	return append(appendRemLen([]byte{typ}, len(body)), body...)
}

// connectOne opens a clean 3.1.1 session without keep-alive, subscribed
// to filter (unless empty), and drains what it is sent.
func connectOne(addr, id, filter string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	body := appendString(nil, "MQTT")
	body = append(body, 4, 0x02, 0, 0) // 3.1.1, clean session, keep-alive 0
	body = appendString(body, id)
	msg := packet(0x10, body)
	if filter != "" {
		sub := appendString([]byte{0, 1}, filter)
		msg = append(msg, packet(0x82, append(sub, 0))...)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return nil, err
	}
	want := []byte{0x20, 2, 0, 0}
	if filter != "" {
		want = append(want, 0x90, 3, 0, 1, 0)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(want) {
		c.Close()
		return nil, fmt.Errorf("%s: CONNACK/SUBACK % x, want % x (%v)", id, got, want, err)
	}
	_ = c.SetDeadline(time.Time{})
	go func() { _, _ = io.Copy(io.Discard, bufio.NewReaderSize(c, 512)) }()
	return c, nil
}

func connectAll(ctx context.Context, addr string, n, dialers int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("dev-%06d", i)
				c, err := connectOne(addr, id, "dev/"+id+"/cmd")
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, firstErr
}

// publish sends QoS 0 messages to random clients' topics at rate per
// second, in 10 ms batches, until stop.
func publish(c net.Conn, clients, rate int, stop chan struct{}, sent *atomic.Uint64) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	w := bufio.NewWriterSize(c, 64<<10)
	begin := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := uint64(time.Since(begin).Seconds() * float64(rate))
		for sent.Load() < due {
			topic := fmt.Sprintf("dev/dev-%06d/cmd", rand.IntN(clients))
			_, _ = w.Write(packet(0x30, append(appendString(nil, topic), `{"set":21.5}`...)))
			sent.Add(1)
		}
		if w.Flush() != nil {
			return
		}
	}
}

// ---- the API ----

type apiClient struct {
	base, token string
	hc          *http.Client
}

func (a *apiClient) getJSON(path string, out any) error {
	req, _ := http.NewRequest("GET", a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("GET %s: %d %s", path, res.StatusCode, b)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// ---- the page ----

// pageLoads loads the dashboard n times in one browser (the first with
// an empty cache): the token goes into sessionStorage first, as the login
// view would put it.
func pageLoads(ctx context.Context, chromium, base, token string, n int) ([]string, error) {
	b, err := cdp.Start(ctx, chromium)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	p, err := b.NewPage(ctx, 1280, 820)
	if err != nil {
		return nil, err
	}
	// An origin for sessionStorage: a path the dashboard does not serve
	// (404), so the cache stays empty for the first load.
	if err := p.Navigate(ctx, base+"favicon.ico"); err != nil {
		return nil, err
	}
	tok, _ := json.Marshal(token)
	if err := p.Eval(ctx, "sessionStorage.setItem('mcutie.token', "+string(tok)+")", nil); err != nil {
		return nil, err
	}
	var rows []string
	for i := 0; i < n; i++ {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		t0 := time.Now()
		if err := p.Navigate(wctx, fmt.Sprintf("%s?load=%d#/", base, i)); err != nil {
			cancel()
			return nil, err
		}
		if err := p.WaitFor(wctx, `document.querySelector("#stat-tiles")`); err != nil {
			cancel()
			return nil, err
		}
		tiles := time.Since(t0)
		var dcl float64
		_ = p.Eval(wctx, `performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd`, &dcl)
		t1 := time.Now()
		if err := p.Eval(wctx, `location.hash = "#/clients"`, nil); err != nil {
			cancel()
			return nil, err
		}
		if err := p.WaitFor(wctx, `document.querySelectorAll("#clients-table tbody tr[data-client]").length === 50`); err != nil {
			cancel()
			return nil, err
		}
		table := time.Since(t1)
		cancel()
		kind := "warm cache"
		if i == 0 {
			kind = "empty cache"
		}
		rows = append(rows, fmt.Sprintf("| %d (%s) | %.0f ms | %s | %s after switching to it |", i+1, kind, dcl, fmtDur(tiles), fmtDur(table)))
	}
	return rows, nil
}
