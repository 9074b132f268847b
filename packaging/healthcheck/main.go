// Command healthcheck is the container image's HEALTHCHECK: the image is
// built FROM scratch, so there is no curl or shell to ask mcutie's
// /readyz. It GETs one URL and exits 0 on HTTP 200, 1 otherwise.
//
//	healthcheck [URL]   (default http://127.0.0.1:9100/readyz)
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := "http://127.0.0.1:9100/readyz"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	os.Exit(check(url, 3*time.Second, os.Stderr))
}

// check GETs url and returns the exit code: 0 on 200, else 1 (the
// reason written to w).
func check(url string, timeout time.Duration, w io.Writer) int {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(w, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(w, "healthcheck: %s: %s\n%s", url, resp.Status, body)
		return 1
	}
	return 0
}
