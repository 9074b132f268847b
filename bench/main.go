//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs the command line args and returns the exit status: 0 on a
// completed run, 1 when the run failed, 2 on a usage error.
func realMain(args []string, stdout, stderr io.Writer) int {
	c, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	rep, err := runBench(c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if c.JSON {
		if err := rep.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	rep.writeTable(stdout)
	return 0
}
