package spawn

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// stdio joins the process's stdin and stdout.
type stdio struct {
	in, out *os.File
}

// Stdio returns the process's stdin and stdout as one io.ReadWriteCloser: the
// remote side's transport when sshd runs "sshvpn --remote". Both descriptors
// are switched to non-blocking mode so that Close unblocks a pending Read.
func Stdio() (io.ReadWriteCloser, error) {
	for _, fd := range []int{0, 1} {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("spawn: stdio: %w", err)
		}
	}
	return &stdio{in: os.NewFile(0, "stdin"), out: os.NewFile(1, "stdout")}, nil
}

func (s *stdio) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *stdio) Write(p []byte) (int, error) { return s.out.Write(p) }

func (s *stdio) Close() error {
	s.in.Close()
	return s.out.Close()
}
