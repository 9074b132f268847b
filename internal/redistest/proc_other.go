//go:build !linux

package redistest

import "syscall"

// dieWithParent: elsewhere there is no parent-death signal; the test's
// cleanup stops the server.
func dieWithParent() *syscall.SysProcAttr { return nil }
