package spawn

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dieWithParent makes the child get SIGTERM when sshvpn dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// pipeSize is what growPipe asks for; the kernel caps it at
// /proc/sys/fs/pipe-max-size for unprivileged processes.
const pipeSize = 1 << 20

// growPipe enlarges a pipe's buffer (F_SETPIPE_SZ), best effort.
func growPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}
