// Package spawn provides sshvpn's byte-stream transports: Start runs the
// system ssh client and exposes the remote command's stdin and stdout as one
// io.ReadWriteCloser, and Stdio does the same for the remote side, which sshd
// started with its stdin and stdout connected to the client.
package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure Start.
type Options struct {
	// SSH is the ssh command and its options, as from SplitCommand("ssh -p
	// 2222"). Empty means "ssh".
	SSH []string
	// Destination is ssh's [user@]host argument.
	Destination string
	// RemoteCommand is the command line ssh asks the server to run.
	RemoteCommand string
	// Stderr receives ssh's stderr (and so the remote command's). Nil means
	// os.Stderr.
	Stderr io.Writer
	// Logf, if set, logs the command line and exit status.
	Logf func(format string, args ...any)
}

// Conn is a running ssh child; reads and writes go to the remote command.
type Conn struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	remote string
	logf   func(string, ...any)

	exited  chan struct{} // closed when the child has been waited for
	waitErr error
	closing sync.Once
	stderr  *stderrWatch
}

// stderrWatch passes ssh's stderr on and keeps the start of its last line:
// whether ssh said something of its own at the end decides how its exit
// status is explained. The remote sshvpn's log lines ("... side=remote")
// come through the same stderr and are not ssh's.
type stderrWatch struct {
	w    io.Writer
	mu   sync.Mutex
	line []byte // the current or last non-empty line, at most 256 bytes
	nl   bool   // the last byte seen ended a line
}

func (s *stderrWatch) Write(p []byte) (int, error) {
	s.mu.Lock()
	for _, b := range p {
		switch {
		case b == '\n':
			s.nl = true
		case s.nl:
			s.line, s.nl = append(s.line[:0], b), false
		case len(s.line) < 256:
			s.line = append(s.line, b)
		}
	}
	s.mu.Unlock()
	return s.w.Write(p)
}

// sshSpokeLast reports whether the last line on stderr looks like ssh's own
// (not the remote sshvpn's log).
func (s *stderrWatch) sshSpokeLast() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := string(s.line)
	return strings.TrimSpace(line) != "" && !strings.Contains(line, "side=remote") && !strings.HasPrefix(line, "sshvpn:")
}

// Args returns the full argv Start runs for o: the ssh command, options that
// keep the stream binary-clean (no pty, no escape character), the
// destination and the remote command.
func (o Options) Args() ([]string, error) {
	if o.Destination == "" {
		return nil, errors.New("spawn: no destination")
	}
	if strings.HasPrefix(o.Destination, "-") {
		return nil, fmt.Errorf("spawn: destination %q starts with '-'; it would be taken as an ssh option", o.Destination)
	}
	argv := append([]string(nil), o.SSH...)
	if len(argv) == 0 {
		argv = []string{"ssh"}
	}
	argv = append(argv, "-T", "-e", "none", o.Destination, o.RemoteCommand)
	return argv, nil
}

// Start runs ssh with o and returns the connection to the remote command.
func Start(o Options) (*Conn, error) {
	argv, err := o.Args()
	if err != nil {
		return nil, err
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr := &stderrWatch{w: o.Stderr}
	if stderr.w == nil {
		stderr.w = os.Stderr
	}
	cmd.Stderr = stderr
	// Die with us: an sshvpn killed hard must not leave ssh holding the
	// remote tunnel open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// A process ssh leaves behind (a ProxyCommand, a ControlPersist
	// master) may hold its stderr open; do not wait for it past ssh's exit.
	cmd.WaitDelay = waitDelay
	// Not cmd.StdoutPipe: Wait, which runs as soon as ssh exits, would
	// close that pipe and lose what ssh wrote last (the remote's Error
	// frame) before Read gets it. This pipe ends with io.EOF once the
	// child's end is closed, and is closed by Close.
	stdout, childStdout, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	cmd.Stdout = childStdout
	stdin, err := cmd.StdinPipe()
	if err != nil {
		stdout.Close()
		childStdout.Close()
		return nil, fmt.Errorf("spawn: %w", err)
	}
	logf("spawn: running %q", argv)
	err = cmd.Start()
	childStdout.Close()
	if err != nil {
		stdout.Close()
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("spawn: ssh client %q not found: install openssh-client or name another with --ssh-cmd", argv[0])
		}
		return nil, fmt.Errorf("spawn: starting %s: %w", argv[0], err)
	}
	c := &Conn{cmd: cmd, stdin: stdin, stdout: stdout, remote: o.RemoteCommand, logf: logf, exited: make(chan struct{}), stderr: stderr}
	go func() {
		c.waitErr = cmd.Wait()
		logf("spawn: ssh exited: %v", c.cmd.ProcessState)
		close(c.exited)
	}()
	return c, nil
}

// waitDelay bounds how long, after ssh exits, its exit status waits for
// ssh's stderr to be closed by other processes holding it.
const waitDelay = time.Second

// exitWait is how long Read waits, after the remote's stdout ends, for ssh to
// exit so its status can explain why.
const exitWait = 5 * time.Second

// Read reads from the remote command's stdout. When the stream ends because
// ssh failed, Read returns an *ExitError explaining how instead of io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err == io.EOF {
		select {
		case <-c.exited:
			if e := c.exitError(); e != nil {
				return n, e
			}
		case <-time.After(exitWait):
		}
	}
	return n, err
}

// Write writes to the remote command's stdin.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	if err != nil {
		select {
		case <-c.exited:
			if e := c.exitError(); e != nil {
				return n, e
			}
		default:
		}
	}
	return n, err
}

// Close closes the remote's stdin, so it sees end of stream and exits, and
// waits for ssh to exit; after a grace period ssh is terminated, then killed.
// It unblocks pending Reads and Writes.
func (c *Conn) Close() error {
	c.closing.Do(func() {
		c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(3 * time.Second):
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(2 * time.Second):
				c.cmd.Process.Kill()
				<-c.exited
			}
		}
		c.stdout.Close()
	})
	return nil
}

// Exited is closed when ssh has exited.
func (c *Conn) Exited() <-chan struct{} { return c.exited }

// Err returns how ssh ended, as an *ExitError, or nil while it runs or if it
// exited with status 0.
func (c *Conn) Err() error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
		return nil
	}
}

func (c *Conn) exitError() error {
	var ee *exec.ExitError
	if errors.Is(c.waitErr, exec.ErrWaitDelay) {
		return nil // ssh exited with status 0; only stderr was left open
	}
	if errors.As(c.waitErr, &ee) {
		return &ExitError{Status: ee.ExitCode(), Signaled: !ee.Exited(), RemoteCommand: c.remote, Silent: !c.stderr.sshSpokeLast()}
	}
	if c.waitErr != nil {
		return fmt.Errorf("spawn: ssh: %w", c.waitErr)
	}
	return nil
}

// ExitError says how ssh, or the remote command it ran, failed.
type ExitError struct {
	Status        int  // exit status; -1 when killed by a signal
	Signaled      bool // ssh was killed by a signal
	RemoteCommand string
	Silent        bool // ssh wrote no message of its own on stderr at the end
}

func (e *ExitError) Error() string {
	switch {
	case e.Signaled:
		return "spawn: ssh was killed by a signal"
	case e.Status == 255 && e.Silent:
		return "spawn: ssh exited with status 255 and no message: the connection dropped, or the remote command was killed by a signal (ssh reports no status then)"
	case e.Status == 255:
		return "spawn: ssh failed to connect or lost the connection (exit status 255; ssh's own message is above)"
	case e.Status == 127:
		return fmt.Sprintf("spawn: the remote could not find the command %q (exit status 127): install sshvpn on the server "+
			"where the remote login's PATH finds it, or name its full path with --remote-cmd \"/path/to/sshvpn --remote\"", e.RemoteCommand)
	case e.Status == 126:
		return fmt.Sprintf("spawn: the remote command %q is not executable (exit status 126): check its permissions on the server", e.RemoteCommand)
	}
	return fmt.Sprintf("spawn: the remote command %q exited with status %d", e.RemoteCommand, e.Status)
}

// Wait waits for ssh to exit or ctx to end.
func (c *Conn) Wait(ctx context.Context) error {
	select {
	case <-c.exited:
		return c.exitError()
	case <-ctx.Done():
		return ctx.Err()
	}
}
