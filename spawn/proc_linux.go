package spawn

import "syscall"

// dieWithParent makes the child get SIGTERM when sshvpn dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
