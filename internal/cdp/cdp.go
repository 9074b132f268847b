package cdp

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Find returns the path of a Chromium binary on PATH, or "".
func Find() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// maxLog bounds the console and exception lines kept.
const maxLog = 500

// Browser is one headless Chromium process.
type Browser struct {
	cmd     *exec.Cmd
	profile string
	ws      *websocket.Conn
	wmu     sync.Mutex // serializes writes on ws

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	closed  error
	logs    []string
	done    chan struct{}
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type message struct {
	ID        int64           `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
	reply
}

// Start launches bin headless (--no-sandbox: tests run as root in CI)
// with a new profile, and connects to its DevTools endpoint. The start
// is bounded by ctx.
func Start(ctx context.Context, bin string, extraArgs ...string) (*Browser, error) {
	profile, err := os.MkdirTemp("", "mcutie-cdp-")
	if err != nil {
		return nil, err
	}
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-quic", "--disable-extensions",
		"--hide-scrollbars", "--mute-audio", "--user-data-dir=" + profile, "--remote-debugging-port=0"},
		extraArgs...)
	args = append(args, "about:blank")
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("cdp: start %s: %w", bin, err)
	}
	b := &Browser{cmd: cmd, profile: profile, pending: map[int64]chan reply{}, done: make(chan struct{})}
	found := make(chan string, 1)
	var early strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				if u, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
					found <- strings.TrimSpace(u)
					sent = true
					continue
				}
				if early.Len() < 8<<10 {
					early.WriteString(line + "\n")
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		if !sent {
			close(found)
		}
	}()
	var wsURL string
	select {
	case u, ok := <-found:
		if !ok {
			b.kill()
			return nil, fmt.Errorf("cdp: %s exited before its DevTools endpoint was up:\n%s", bin, early.String())
		}
		wsURL = u
	case <-ctx.Done():
		b.kill()
		return nil, fmt.Errorf("cdp: no DevTools endpoint from %s: %w", bin, ctx.Err())
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		b.kill()
		return nil, fmt.Errorf("cdp: dial %s: %w", wsURL, err)
	}
	ws.SetReadLimit(256 << 20) // screenshots arrive as one base64 message
	b.ws = ws
	go b.readLoop()
	return b, nil
}

func (b *Browser) readLoop() {
	defer close(b.done)
	for {
		var m message
		if err := b.ws.ReadJSON(&m); err != nil {
			b.mu.Lock()
			b.closed = fmt.Errorf("cdp: connection to the browser lost: %w", err)
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m.reply
			}
			continue
		}
		switch m.Method {
		case "Runtime.consoleAPICalled":
			var p struct {
				Type string `json:"type"`
				Args []struct {
					Value       any    `json:"value"`
					Description string `json:"description"`
				} `json:"args"`
			}
			_ = json.Unmarshal(m.Params, &p)
			parts := []string{"console." + p.Type + ":"}
			for _, a := range p.Args {
				if a.Value != nil {
					parts = append(parts, fmt.Sprint(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.log(strings.Join(parts, " "))
		case "Runtime.exceptionThrown":
			var p struct {
				Details struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			}
			_ = json.Unmarshal(m.Params, &p)
			b.log("exception: " + p.Details.Text + " " + p.Details.Exception.Description)
		}
	}
}

func (b *Browser) log(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.logs) < maxLog {
		b.logs = append(b.logs, s)
	}
}

// Logs returns the console messages and uncaught exceptions of every
// page so far (the first maxLog).
func (b *Browser) Logs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logs...)
}

// call sends one command (on session, or the browser when "") and
// decodes its result into out (nil: ignored).
func (b *Browser) call(ctx context.Context, session, method string, params, out any) error {
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.closed != nil {
		b.mu.Unlock()
		return b.closed
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b.wmu.Lock()
	err := b.ws.WriteJSON(msg)
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("cdp: send %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.closed
		}
		if r.Error != nil {
			return fmt.Errorf("cdp: %s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("cdp: %s: %w", method, ctx.Err())
	}
}

// Page is one tab.
type Page struct {
	b       *Browser
	session string
}

// NewPage opens a tab of width × height CSS pixels with the Page and
// Runtime domains enabled.
func (b *Browser) NewPage(ctx context.Context, width, height int) (*Page, error) {
	var t struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &t); err != nil {
		return nil, err
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": t.TargetID, "flatten": true}, &s); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: s.SessionID}
	for _, m := range []string{"Page.enable", "Runtime.enable"} {
		if err := p.Call(ctx, m, nil, nil); err != nil {
			return nil, err
		}
	}
	err := p.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	return p, err
}

// Call sends a DevTools command to the page.
func (p *Page) Call(ctx context.Context, method string, params, out any) error {
	return p.b.call(ctx, p.session, method, params, out)
}

// Navigate loads url (it returns once the navigation is committed; wait
// for the page's content with WaitFor).
func (p *Page) Navigate(ctx context.Context, url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.Call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("cdp: navigate %s: %s", url, r.ErrorText)
	}
	return nil
}

// ErrException is wrapped by Eval's error when the expression threw.
var ErrException = errors.New("cdp: exception")

// Eval evaluates expr in the page (a promise is awaited) and decodes its
// value, which must be JSON-serializable, into out (nil: ignored).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("%w: %s %s (in %s)", ErrException, e.Text, e.Exception.Description, expr)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// WaitFor evaluates expr every 50 ms until it is truthy or ctx ends; the
// error then names expr and its last exception, if any.
func (p *Page) WaitFor(ctx context.Context, expr string) error {
	var last error
	for {
		var ok bool
		err := p.Eval(ctx, "!!("+expr+")", &ok)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
			if ctx.Err() == nil && !errors.Is(err, ErrException) {
				return err // the browser is gone
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("cdp: waiting for %s: %w (last: %v)", expr, ctx.Err(), last)
			}
			return fmt.Errorf("cdp: waiting for %s: %w", expr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Screenshot returns the page's visible area as a PNG; fullPage: the
// whole document, however tall.
func (p *Page) Screenshot(ctx context.Context, fullPage bool) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	params := map[string]any{"format": "png", "captureBeyondViewport": fullPage}
	if fullPage {
		var size struct{ W, H float64 }
		if err := p.Eval(ctx, "({W: document.documentElement.scrollWidth, H: document.documentElement.scrollHeight})", &size); err != nil {
			return nil, err
		}
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": size.W, "height": size.H, "scale": 1}
	}
	if err := p.Call(ctx, "Page.captureScreenshot", params, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Close ends the browser: its whole process group, then the profile.
func (b *Browser) Close() {
	if b.ws != nil {
		_ = b.ws.Close()
	}
	b.kill()
}

func (b *Browser) kill() {
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		_ = b.cmd.Wait()
	}
	_ = os.RemoveAll(b.profile)
}
