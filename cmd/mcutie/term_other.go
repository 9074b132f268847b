//go:build !linux

package main

import (
	"bufio"
	"os"
	"strings"
)

// Off Linux the password is read with echo on: use -b or a pipe.
func isTerminal(*os.File) bool { return false }

func readNoEcho(f *os.File) ([]byte, error) {
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return nil, err
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}
