// Package spawn is sshvpn's transport seam: the ways to reach the other end
// of the tunnel. A Dialer opens a Conn, a byte stream that carries sshvpn's
// frames, knows the address of the host it reached, and says why it ended.
// A PacketDialer (OpenSSHTun, for a server without sshvpn) opens a
// PacketConn instead, which carries IP packets itself.
//
// Options is the Dialer that runs the system ssh client (Start), exposing
// the remote command's stdin and stdout as the stream; Stdio is the remote
// side's Conn, which sshd started with its stdin and stdout connected to
// the client. More transports (an in-process SSH client) are further
// Dialers behind the same seam.
package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Conn is one connection to the other end of the tunnel.
type Conn interface {
	io.ReadWriteCloser
	// PeerAddr is the address of the other end's host as this connection
	// reached it: the SSH server (with ProxyJump, the first hop), or on
	// the remote side the SSH client. Meaningful once data has flowed.
	PeerAddr(ctx context.Context) (netip.Addr, error)
	// Err says why the connection ended: nil while it runs and after a
	// clean end, else an error such as an *ExitError. A Read that meets the
	// end of the stream returns the same error.
	Err() error
}

// Dialer opens connections to the other end of the tunnel.
type Dialer interface {
	Dial(ctx context.Context) (Conn, error)
}

// Options configure Start. Options is the Dialer that runs ssh.
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
	// As, if set, runs ssh as that account, with its HOME, USER and
	// LOGNAME (sshvpn under sudo: the invoking user's keys, configuration
	// and known_hosts, not root's).
	As *User
}

// Process is a running ssh child, a Conn: reads and writes go to the remote
// command.
type Process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	remote string
	opts   Options
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

// sshLast returns the last line on stderr if it looks like ssh's own (not
// the remote sshvpn's log), else "".
func (s *stderrWatch) sshLast() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	line := strings.TrimSpace(string(s.line))
	if strings.Contains(line, "side=remote") || strings.HasPrefix(line, "sshvpn:") {
		return ""
	}
	return line
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

// Dial runs ssh (see Start).
func (o Options) Dial(ctx context.Context) (Conn, error) {
	p, err := Start(o)
	if err != nil {
		return nil, err
	}
	return p, nil
}

var _ Conn = (*Process)(nil)

// Start runs ssh with o and returns the connection to the remote command.
func Start(o Options) (*Process, error) {
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
	cmd.SysProcAttr = dieWithParent()
	if o.As != nil {
		if err := o.As.Apply(cmd); err != nil {
			return nil, err
		}
	}
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
	// Bigger pipes than the default 64 KiB, best effort: fewer wake-ups
	// of ssh and sshvpn per megabyte.
	growPipe(stdout)
	if f, ok := stdin.(*os.File); ok {
		growPipe(f)
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
	c := &Process{cmd: cmd, stdin: stdin, stdout: stdout, remote: o.RemoteCommand, opts: o, logf: logf, exited: make(chan struct{}), stderr: stderr}
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
func (c *Process) Read(p []byte) (int, error) {
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
func (c *Process) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	return explained(n, err, c.Err)
}

// Close closes the remote's stdin, so it sees end of stream and exits, and
// waits for ssh to exit; after a grace period ssh is terminated, then killed.
// It unblocks pending Reads and Writes.
func (c *Process) Close() error {
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

// Err returns how ssh ended, as an *ExitError, or nil while it runs or if it
// exited with status 0.
func (c *Process) Err() error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
		return nil
	}
}

func (c *Process) exitError() error {
	var ee *exec.ExitError
	if errors.Is(c.waitErr, exec.ErrWaitDelay) {
		return nil // ssh exited with status 0; only stderr was left open
	}
	if errors.As(c.waitErr, &ee) {
		// ssh's stderr reached the user as it came: its message is
		// not said again.
		return &ExitError{Status: ee.ExitCode(), Signaled: !ee.Exited(), RemoteCommand: c.remote, Message: c.stderr.sshLast(),
			Shown: true, Destination: c.opts.Destination}
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
	Message       string // ssh's own last line on stderr, if it had one at the end
	Shown         bool   // Message has reached the user already (ssh's stderr)
	Destination   string // ssh's destination, for advice
}

// advice is what a person can do about a failed ssh connection.
func (e *ExitError) advice() string {
	dest := e.Destination
	if dest == "" {
		dest = "HOST"
	}
	switch {
	case strings.Contains(e.Message, "Permission denied"):
		return fmt.Sprintf(". The server took none of the keys offered: ssh-add -l lists the agent's, and -e \"ssh -i KEY\" (or IdentityFile in ssh_config) offers another; ssh -v %s shows each key tried", dest)
	case strings.Contains(e.Message, "Host key verification failed"), strings.Contains(e.Message, "IDENTIFICATION HAS CHANGED"):
		return fmt.Sprintf(". Check the server's host key (ssh %s says which line of known_hosts differs)", dest)
	}
	return fmt.Sprintf(". ssh -v %s shows why", dest)
}

// permanent are the starts of ssh's messages about failures that trying
// again cannot mend: authentication, host keys, configuration.
var permanent = []string{
	"Permission denied", "Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
	"Host key for", "No matching host key", "Too many authentication failures", "Bad configuration option",
	"Bad owner or permissions", "no argument after keyword", "Unsupported option", "Bad port",
}

// Temporary reports whether connecting again may succeed: a connection
// that was refused, timed out, was reset or dropped, or that sshd cut off
// (MaxStartups), but not a failed authentication, an unknown or changed host
// key, a missing or unusable remote command, or a remote command that
// failed for its own reasons.
func (e *ExitError) Temporary() bool {
	switch {
	case e.Signaled:
		return true
	case e.Status != 255:
		return false
	}
	for _, p := range permanent {
		if strings.Contains(e.Message, p) {
			return false
		}
	}
	return true
}

func (e *ExitError) Error() string {
	switch {
	case e.Signaled:
		return "spawn: ssh was killed by a signal"
	case e.Status == 255 && e.Message == "":
		return "spawn: ssh exited with status 255 and no message: the connection dropped, or the remote command was killed by a signal (ssh reports no status then)"
	case e.Status == 255:
		msg := "spawn: ssh failed to connect or lost the connection (exit status 255)"
		if e.Shown {
			msg += "; ssh said why above"
		} else {
			msg += ": " + e.Message
		}
		return msg + e.advice()
	case e.Status == 127:
		return fmt.Sprintf("spawn: the remote could not find the command %q (exit status 127): sshvpn is not on the server, "+
			"or not where the remote login's PATH finds it: pass --upload to copy this sshvpn there for the session, install sshvpn there, "+
			"or name its full path with --remote-cmd \"/path/to/sshvpn --remote\"", e.RemoteCommand)
	case e.Status == 126:
		return fmt.Sprintf("spawn: the remote command %q is not executable (exit status 126): check its permissions on the server", e.RemoteCommand)
	}
	return fmt.Sprintf("spawn: the remote command %q exited with status %d", e.RemoteCommand, e.Status)
}

// wait waits for ssh to exit or ctx to end.
func (c *Process) wait(ctx context.Context) error {
	select {
	case <-c.exited:
		return c.exitError()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// explained is a failed read's or write's result, with err replaced by why
// the connection ended (reason), once that is known.
func explained(n int, err error, reason func() error) (int, error) {
	if err != nil {
		if e := reason(); e != nil {
			return n, e
		}
	}
	return n, err
}
