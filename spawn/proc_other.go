//go:build !linux

package spawn

import (
	"os"
	"syscall"
)

// dieWithParent: other systems have no parent-death signal; the child ends
// when its stdin closes.
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// growPipe does nothing here.
func growPipe(*os.File) {}
