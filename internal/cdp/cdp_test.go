package cdp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A page served on loopback: evaluated, waited on (the condition turns
// true after a click), its console read and its screenshot a PNG.
func TestBrowser(t *testing.T) {
	bin := Find()
	if bin == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium)")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><button id=b onclick="document.title='clicked'; console.log('hello', 42)">x</button>`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Start(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.NewPage(ctx, 400, 300)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.getElementById("b")`); err != nil {
		t.Fatal(err)
	}
	if err := p.Eval(ctx, `document.getElementById("b").click()`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.title === "clicked"`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := p.Eval(ctx, `Promise.resolve(6 * 7)`, &n); err != nil || n != 42 {
		t.Fatalf("eval: %d, %v", n, err)
	}
	if err := p.Eval(ctx, `nosuch.thing`, nil); !errors.Is(err, ErrException) {
		t.Fatalf("a throwing expression: %v, want ErrException", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := p.WaitFor(short, `false`); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(false): %v", err)
	}
	png, err := p.Screenshot(ctx, false)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	found := false
	for _, l := range b.Logs() {
		found = found || l == "console.log: hello 42"
	}
	if !found {
		t.Fatalf("console log not seen: %q", b.Logs())
	}
}
