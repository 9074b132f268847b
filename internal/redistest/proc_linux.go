package redistest

import "syscall"

// dieWithParent makes redis-server die with the test process (Linux's
// parent-death signal), so a killed test leaves no server behind.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
