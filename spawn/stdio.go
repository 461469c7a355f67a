package spawn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
)

// stdio joins the process's stdin and stdout.
type stdio struct {
	in, out *os.File
}

// Stdio returns the process's stdin and stdout as one Conn: the remote
// side's transport when sshd runs "sshvpn --remote". Both descriptors are
// switched to non-blocking mode so that Close unblocks a pending Read.
func Stdio() (Conn, error) {
	for _, fd := range []int{0, 1} {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("spawn: stdio: %w", err)
		}
	}
	s := &stdio{in: os.NewFile(0, "stdin"), out: os.NewFile(1, "stdout")}
	growPipe(s.in) // when sshd gave pipes; sockets keep their buffers
	growPipe(s.out)
	return s, nil
}

func (s *stdio) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *stdio) Write(p []byte) (int, error) { return s.out.Write(p) }

// PeerAddr is the SSH client's address, as sshd tells it in
// SSH_CONNECTION.
func (s *stdio) PeerAddr(context.Context) (netip.Addr, error) {
	f := strings.Fields(os.Getenv("SSH_CONNECTION"))
	if len(f) == 0 {
		return netip.Addr{}, errors.New("spawn: SSH_CONNECTION is not set; the client's address is unknown")
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, fmt.Errorf("spawn: SSH_CONNECTION: %w", err)
	}
	return a.Unmap(), nil
}

// Err is nil: the stream just ends.
func (s *stdio) Err() error { return nil }

func (s *stdio) Close() error {
	s.in.Close()
	return s.out.Close()
}
