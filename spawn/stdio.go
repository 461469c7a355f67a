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
	conn    string // sshd's SSH_CONNECTION for them
}

// Stdio returns the process's stdin and stdout as one Conn: the remote
// side's transport when sshd runs "sshvpn --remote". Both descriptors are
// switched to non-blocking mode so that Close unblocks a pending Read.
func Stdio() (Conn, error) {
	return Files(0, 1, os.Getenv("SSH_CONNECTION"))
}

// Files is Stdio for another process's stdin and stdout, handed over as
// descriptors in and out (one more stream of a striped session, whose
// first process serves it), with that process's SSH_CONNECTION (sshConn). The Conn
// owns the descriptors.
func Files(in, out int, sshConn string) (Conn, error) {
	for _, fd := range []int{in, out} {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("spawn: stdio: %w", err)
		}
	}
	s := &stdio{in: os.NewFile(uintptr(in), "stdin"), out: os.NewFile(uintptr(out), "stdout"), conn: sshConn}
	growPipe(s.in) // when sshd gave pipes; sockets keep their buffers
	growPipe(s.out)
	return s, nil
}

func (s *stdio) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *stdio) Write(p []byte) (int, error) { return s.out.Write(p) }

// PeerAddr is the SSH client's address, as sshd tells it in
// SSH_CONNECTION.
func (s *stdio) PeerAddr(context.Context) (netip.Addr, error) {
	f := strings.Fields(s.conn)
	if len(f) == 0 {
		return netip.Addr{}, errors.New("spawn: SSH_CONNECTION is not set; the client's address is unknown")
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Addr{}, fmt.Errorf("spawn: SSH_CONNECTION: %w", err)
	}
	return a.Unmap(), nil
}

// Files are the descriptors this Conn reads and writes, for handing
// them to another process.
func (s *stdio) Files() (in, out *os.File) { return s.in, s.out }

// Err is nil: the stream just ends.
func (s *stdio) Err() error { return nil }

func (s *stdio) Close() error {
	s.in.Close()
	return s.out.Close()
}
