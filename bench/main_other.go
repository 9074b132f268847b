//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench: needs Linux (its client engine is built on epoll and it reads broker CPU and memory from /proc)")
	os.Exit(1)
}
