//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "compare: needs Linux (taskset, /proc and the bench tool are Linux-only)")
	os.Exit(1)
}
