//go:build !linux

package spawn

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// dieWithParent: other systems have no parent-death signal; the child ends
// when its stdin closes.
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// growPipe does nothing here.
func growPipe(*os.File) {}

// Apply would make cmd run as account u: not supported here.
func (u *User) Apply(*exec.Cmd) error {
	return errors.New("spawn: running ssh as another user is supported on Linux only")
}
