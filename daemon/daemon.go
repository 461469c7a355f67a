// Package daemon starts a program again in the background and returns
// once it says it is ready: "sshvpn up NAME" returns as wg-quick does,
// while the tunnel goes on in a process of its own (in a session of its
// own, so that the terminal's hangup does not end it). The child says it
// is ready by the sd_notify protocol (READY=1 on $NOTIFY_SOCKET), which
// sshvpn speaks to systemd anyway; until then its stderr reaches the
// caller's, so that a failure to come up is shown where it was asked for.
package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Start runs argv (argv[0] is the program) in the background with env
// added to this process's environment and NOTIFY_SOCKET pointing at a
// socket of its own, copies its stderr to stderr until it is ready, and
// returns its pid once it sends READY=1, with the STATUS it sent along.
// If the child exits first, Start returns an *ExitError with its status.
// A child that is neither ready nor gone after timeout is left running,
// and Start returns an error saying so.
func Start(argv, env []string, stderr io.Writer, timeout time.Duration) (pid int, status string, err error) {
	dir, err := os.MkdirTemp("", "sshvpn-up-")
	if err != nil {
		return 0, "", fmt.Errorf("daemon: %w", err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return 0, "", fmt.Errorf("daemon: %w", err)
	}
	defer conn.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, "", fmt.Errorf("daemon: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), env...), "NOTIFY_SOCKET="+sock)
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, "", fmt.Errorf("daemon: %w", err)
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(stderr, pr) // until the child closes its stderr, or we leave
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if st, ok := readyIn(string(buf[:n])); ok {
				ready <- st
				return
			}
		}
	}()
	select {
	case st := <-ready:
		pid := cmd.Process.Pid
		cmd.Process.Release()
		return pid, st, nil
	case err := <-exited:
		<-copied
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, "", &ExitError{Status: ee.ExitCode()}
		}
		if err == nil {
			err = errors.New("it exited before it was ready")
		}
		return 0, "", fmt.Errorf("daemon: %w", err)
	case <-time.After(timeout):
		return cmd.Process.Pid, "", fmt.Errorf("daemon: pid %d was not ready within %v; it goes on in the background", cmd.Process.Pid, timeout)
	}
}

// readyIn reports whether an sd_notify message says READY=1, and its
// STATUS.
func readyIn(msg string) (status string, ready bool) {
	sc := bufio.NewScanner(strings.NewReader(msg))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "READY":
			ready = v == "1"
		case "STATUS":
			status = v
		}
	}
	return status, ready
}

// ExitError is a child that exited before it was ready, with its exit
// status (its own words went to stderr).
type ExitError struct{ Status int }

func (e *ExitError) Error() string {
	return fmt.Sprintf("daemon: it exited with status %d before it was ready", e.Status)
}
