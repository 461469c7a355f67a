package spawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/skeema/knownhosts"
	"github.com/sshvpn/sshvpn/internal/text"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// Native is the Dialer that speaks SSH in this process, with
// golang.org/x/crypto/ssh, and behaves like the user's ssh: the same
// configuration (see ResolveSSHConfig), keys (the agent first, then the
// identity files), known_hosts (hashed entries, @revoked, the host-key
// algorithms known_hosts holds for the host), ProxyJump hops and
// ServerAlive keepalives. It runs RemoteCommand, or the sshd Subsystem, in
// a session channel.
type Native struct {
	ConfigFile    string // -F; empty: ~/.ssh/config and /etc/ssh/ssh_config
	Destination   string // [user@]host[:port]
	RemoteCommand string
	Subsystem     string // when set, requested instead of RemoteCommand
	// AcceptNew records an unknown host's key and connects, like
	// StrictHostKeyChecking=accept-new. A changed key is refused whatever
	// is set.
	AcceptNew bool
	Stderr    io.Writer // the remote command's stderr; nil means os.Stderr
	Logf      func(format string, args ...any)
	// Prompt asks the user for a passphrase or password without echoing
	// it; nil where there is no terminal (then encrypted keys are skipped,
	// and no password is asked for).
	Prompt func(prompt string) (string, error)
	// As, if set, is the account whose ssh configuration, keys and
	// known_hosts to use instead of this process's (sshvpn under sudo).
	As *User
	// Prepare, if set, runs on each connection before the remote command
	// starts, with a Runner for commands on the server, and returns the
	// remote command to run instead of RemoteCommand (--upload).
	Prepare func(ctx context.Context, run Runner) (string, error)
}

// handshakeTimeout bounds the SSH handshake and login when ConnectTimeout
// does not; ssh has no such bound, but it also has no one waiting for it
// to reconnect.
const handshakeTimeout = time.Minute

// ConnectError is a failure to reach the server or to log in.
type ConnectError struct {
	Err  error
	Temp bool // another attempt may succeed (refused, timed out, reset)
}

func (e *ConnectError) Error() string   { return "spawn: " + e.Err.Error() }
func (e *ConnectError) Unwrap() error   { return e.Err }
func (e *ConnectError) Temporary() bool { return e.Temp }

func (n *Native) logf(format string, args ...any) {
	if n.Logf != nil {
		n.Logf(format, args...)
	}
}

// Dial connects (through the ProxyJump hops), logs in and starts the remote
// command or subsystem.
func (n *Native) Dial(ctx context.Context) (Conn, error) {
	c, err := n.reach(ctx)
	if err != nil {
		return nil, err
	}
	remote := n.RemoteCommand
	if n.Prepare != nil {
		if remote, err = n.Prepare(ctx, c.run); err != nil {
			c.Close()
			return nil, err
		}
	}
	s, err := c.client.NewSession()
	if err != nil {
		c.Close()
		return nil, &ConnectError{Err: fmt.Errorf("opening a session: %w", err), Temp: true}
	}
	stdin, err1 := s.StdinPipe()
	stdout, err2 := s.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		c.Close()
		return nil, fmt.Errorf("spawn: %w", err)
	}
	w := n.Stderr
	if w == nil {
		w = os.Stderr
	}
	c.stderr = &stderrWatch{w: w}
	s.Stderr = c.stderr
	c.session, c.stdin, c.stdout, c.remote = s, stdin, stdout, remote
	if n.Subsystem != "" {
		c.remote = "subsystem " + n.Subsystem
		if err := s.RequestSubsystem(n.Subsystem); err != nil {
			c.Close()
			if errors.Is(err, io.EOF) {
				return nil, &ConnectError{Err: fmt.Errorf("the connection closed while asking for subsystem %q: %w", n.Subsystem, err), Temp: true}
			}
			return nil, fmt.Errorf("spawn: the server has no subsystem %q (add \"Subsystem %s /usr/local/bin/sshvpn --remote\" to its sshd_config): %w", n.Subsystem, n.Subsystem, err)
		}
	} else if err := s.Start(remote); err != nil {
		c.Close()
		return nil, fmt.Errorf("spawn: running %q on the server: %w", remote, err)
	}
	c.started = true
	go func() {
		c.waitErr = s.Wait()
		close(c.exited)
	}()
	return c, nil
}

// reach resolves the destination's configuration and connects to it.
func (n *Native) reach(ctx context.Context) (*nativeConn, error) {
	cfg, err := resolveSSHConfig(n.ConfigFile, n.Destination, n.As)
	if err != nil {
		return nil, err
	}
	return n.connect(ctx, cfg)
}

// nativeConn is an SSH connection through its hops.
type nativeConn struct {
	client *ssh.Client
	hops   []*ssh.Client // the ProxyJump hops, first first
	peer   net.Addr      // the first hop's TCP peer
	local  net.Addr      // and this end of that connection
	logf   func(string, ...any)
	dead   chan struct{} // closed when keepalives went unanswered
	done   chan struct{}
	once   sync.Once

	session *ssh.Session
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  *stderrWatch
	remote  string
	started bool // the remote command or subsystem runs
	exited  chan struct{}
	waitErr error
}

// connect dials the hops and the destination, each verified and logged in
// to with its own configuration, and starts the keepalives.
func (n *Native) connect(ctx context.Context, cfg SSHConfig) (*nativeConn, error) {
	c := &nativeConn{logf: n.logf, dead: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
	hops := make([]SSHConfig, 0, len(cfg.ProxyJump)+1)
	for _, hop := range cfg.ProxyJump {
		h, err := resolveSSHConfig(n.ConfigFile, hop, n.As)
		if err != nil {
			return nil, err
		}
		hops = append(hops, h)
	}
	hops = append(hops, cfg)
	var prev *ssh.Client
	for i, h := range hops {
		addr := net.JoinHostPort(h.HostName, strconv.Itoa(h.Port))
		var conn net.Conn
		var err error
		if prev == nil {
			d := net.Dialer{Timeout: h.ConnectTimeout}
			conn, err = d.DialContext(ctx, "tcp", addr)
			if err != nil {
				c.closeHops()
				return nil, &ConnectError{Err: fmt.Errorf("connecting to %s (%s): %w", h.Host, addr, err), Temp: true}
			}
			c.peer, c.local = conn.RemoteAddr(), conn.LocalAddr()
		} else if conn, err = prev.DialContext(ctx, "tcp", addr); err != nil {
			c.closeHops()
			return nil, &ConnectError{Err: fmt.Errorf("connecting to %s (%s) through %s: %w", h.Host, addr, hops[i-1].Host, err), Temp: true}
		}
		cc, err := n.login(ctx, conn, addr, h)
		if err != nil {
			conn.Close()
			c.closeHops()
			return nil, err
		}
		n.logf("spawn: logged in to %s@%s (%s)", h.User, h.Host, addr)
		if i < len(hops)-1 {
			c.hops = append(c.hops, cc)
		} else {
			c.client = cc
		}
		prev = cc
	}
	if cfg.ServerAliveInterval > 0 {
		go c.keepalive(cfg.ServerAliveInterval, cfg.ServerAliveCountMax)
	}
	return c, nil
}

// login runs the SSH handshake on conn: host key check, then the keys.
func (n *Native) login(ctx context.Context, conn net.Conn, addr string, h SSHConfig) (*ssh.Client, error) {
	hostKey, algos, err := n.hostKeys(h)
	if err != nil {
		return nil, err
	}
	auth, closeAgent := n.auth(h)
	defer closeAgent()
	config := &ssh.ClientConfig{User: h.User, Auth: auth, HostKeyCallback: hostKey, HostKeyAlgorithms: algos, Timeout: h.ConnectTimeout}
	// The handshake must not hang on a server that accepted the TCP
	// connection and went silent: ConnectTimeout, else handshakeTimeout.
	limit := handshakeTimeout
	if n.Prompt != nil {
		limit = 5 * time.Minute // someone may be typing a passphrase
	}
	deadline := time.Now().Add(limit)
	if h.ConnectTimeout > 0 && n.Prompt == nil {
		deadline = time.Now().Add(h.ConnectTimeout)
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	// A connection through a hop takes no deadline: a timer and ctx
	// close it instead, on any kind of connection.
	stopTimer := time.AfterFunc(time.Until(deadline), func() { conn.Close() })
	stopCtx := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	stopTimer.Stop()
	stopCtx()
	if err != nil {
		var hk *hostKeyError
		switch {
		case errors.As(err, &hk):
			return nil, &ConnectError{Err: hk}
		case containsAny(err.Error(), "no common algorithm"):
			return nil, &ConnectError{Err: fmt.Errorf("SSH handshake with %s (%s): %w (the host key types known_hosts holds for it are not what it offers)", h.Host, addr, err)}
		case isAuthFailure(err):
			return nil, &ConnectError{Err: fmt.Errorf("%s@%s: permission denied (%w): none of the agent's keys or the identity files (%s) was accepted", h.User, h.Host, err, fmtList(h.IdentityFiles))}
		}
		return nil, &ConnectError{Err: fmt.Errorf("SSH handshake with %s (%s): %w", h.Host, addr, err), Temp: true}
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

func isAuthFailure(err error) bool {
	var se *ssh.ServerAuthError
	return errors.As(err, &se) || containsAny(err.Error(), "unable to authenticate", "no supported methods remain")
}

// keepalive sends keepalive@openssh.com every interval; after max
// unanswered in a row the connection counts as dead and is closed.
func (c *nativeConn) keepalive(interval time.Duration, max int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-t.C:
		case <-c.done:
			return
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				missed = max + 1
			} else {
				missed = 0
			}
		case <-time.After(interval):
			missed++
		case <-c.done:
			return
		}
		if missed > max {
			c.logf("spawn: the SSH server did not answer %d keepalives", missed)
			close(c.dead)
			c.closeAll()
			return
		}
	}
}

func (c *nativeConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if err == io.EOF || (err != nil && n == 0) {
		select {
		case <-c.exited:
		case <-time.After(exitWait):
		}
		if e := c.Err(); e != nil {
			return n, e
		}
	}
	return n, err
}

func (c *nativeConn) Write(p []byte) (int, error) {
	n, err := c.stdin.Write(p)
	return explained(n, err, c.Err)
}

// Err says why the connection ended, once it has.
func (c *nativeConn) Err() error {
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	msg := ""
	if c.stderr != nil {
		msg = c.stderr.sshLast()
	}
	dead := false
	select {
	case <-c.dead:
		dead = true
	default:
	}
	select {
	case <-c.exited:
		switch {
		case c.waitErr == nil:
			return nil
		case dead && !errors.As(c.waitErr, &ee):
			// The session ended because the keepalives closed it.
			return &ExitError{Status: 255, RemoteCommand: c.remote, Message: "the SSH server stopped answering keepalives (ServerAliveInterval)"}
		case errors.As(c.waitErr, &ee) && ee.Signal() != "":
			// As the ssh binary reports it: 255, and no status.
			return &ExitError{Status: 255, RemoteCommand: c.remote, Message: msg}
		case errors.As(c.waitErr, &ee):
			return &ExitError{Status: ee.ExitStatus(), RemoteCommand: c.remote, Message: msg}
		case errors.As(c.waitErr, &missing):
			return &ExitError{Status: 255, RemoteCommand: c.remote, Message: "the connection to the server was lost"}
		}
		return &ExitError{Status: 255, RemoteCommand: c.remote, Message: c.waitErr.Error()}
	default:
	}
	if dead {
		return &ExitError{Status: 255, RemoteCommand: c.remote, Message: "the SSH server stopped answering keepalives (ServerAliveInterval)"}
	}
	return nil
}

// PeerAddr is the first hop's address, as the TCP connection reached it.
func (c *nativeConn) PeerAddr(context.Context) (netip.Addr, error) {
	if a, ok := c.peer.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("spawn: the server's address is unknown (%v)", c.peer)
}

// Close ends the session and the connection (and its hops).
func (c *nativeConn) Close() error {
	if c.stdin != nil {
		c.stdin.Close()
	}
	if c.started {
		select {
		case <-c.exited:
		case <-time.After(2 * time.Second):
		}
	}
	c.closeAll()
	return nil
}

func (c *nativeConn) closeAll() {
	c.once.Do(func() { close(c.done) })
	if c.client != nil {
		c.client.Close()
	}
	c.closeHops()
}

func (c *nativeConn) closeHops() {
	for i := len(c.hops) - 1; i >= 0; i-- {
		c.hops[i].Close()
	}
}

// hostKeyError is a host key that cannot be trusted.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// hostKeys returns the host key check for h and the host-key algorithms
// known_hosts holds for it (so that the server is asked for a key type we
// can check, not one known_hosts lacks, which would look like a changed key).
func (n *Native) hostKeys(h SSHConfig) (ssh.HostKeyCallback, []string, error) {
	var files []string
	for _, f := range append(append([]string(nil), h.UserKnownHostsFiles...), h.GlobalKnownHostsFiles...) {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return nil, nil, &ConnectError{Err: fmt.Errorf("reading known_hosts: %w", err)}
	}
	// As ssh looks it up: HostKeyAlias alone, or the host name with its
	// port if that is not 22 ([host]:port).
	name := h.HostName
	lookup := net.JoinHostPort(name, strconv.Itoa(h.Port))
	if h.HostKeyAlias != "" {
		name = h.HostKeyAlias
		lookup = net.JoinHostPort(name, "22")
	}
	algos := db.HostKeyAlgorithms(lookup)
	check := db.HostKeyCallback()
	mode := h.StrictHostKeyChecking
	if n.AcceptNew && mode != "no" {
		mode = "accept-new"
	}
	cb := func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := check(lookup, remote, key)
		var revoked *xknownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &revoked):
			return &hostKeyError{fmt.Sprintf("Host key verification failed: the %s key of %s (%s) is marked @revoked in known_hosts", key.Type(), h.Host, ssh.FingerprintSHA256(key))}
		case knownhosts.IsHostKeyChanged(err):
			return &hostKeyError{fmt.Sprintf("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed: %s (%s) offered the %s key %s, which is not the one known_hosts has for it.\n"+
				"Someone may be intercepting the connection, or the server's key was replaced. Check with the server's admin; if the new key is right, remove the old one (ssh-keygen -R %s).", h.Host, remote, key.Type(), ssh.FingerprintSHA256(key), name)}
		case knownhosts.IsHostUnknown(err) && (mode == "accept-new" || mode == "no"):
			if err := recordHost(h.UserKnownHostsFiles, knownhosts.Normalize(lookup), key, n.As); err != nil {
				return &hostKeyError{fmt.Sprintf("Host key verification failed: cannot record the key of %s: %v", h.Host, err)}
			}
			n.logf("spawn: recorded the %s key of %s (%s) in %s", key.Type(), h.Host, ssh.FingerprintSHA256(key), h.UserKnownHostsFiles[0])
			return nil
		case knownhosts.IsHostUnknown(err):
			return &hostKeyError{fmt.Sprintf("Host key verification failed: %s (%s) is not in known_hosts (%s); its %s key is %s. Check that fingerprint, then connect once with --accept-new (or ssh to it) to record it",
				h.Host, remote, fmtList(h.UserKnownHostsFiles), key.Type(), ssh.FingerprintSHA256(key))}
		}
		return &hostKeyError{fmt.Sprintf("Host key verification failed for %s: %v", h.Host, err)}
	}
	return cb, algos, nil
}

// recordHost appends key for host (its known_hosts name alone, not the
// address it was reached at) to the first of files.
func recordHost(files []string, host string, key ssh.PublicKey, as *User) error {
	if len(files) == 0 {
		return errors.New("no UserKnownHostsFile")
	}
	dir := filepath.Dir(files[0])
	_, err := os.Lstat(dir)
	newDir := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Not through a link another account could have planted, and, for
	// sshvpn under sudo, the user's own file, not root's.
	f, err := os.OpenFile(files[0], os.O_APPEND|os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if as != nil {
		if newDir {
			os.Lchown(dir, int(as.UID), int(as.GID))
		}
		if err := f.Chown(int(as.UID), int(as.GID)); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := fmt.Fprintln(f, knownhosts.Line([]string{host}, key)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// auth returns the ways to log in: one public-key method with the agent's
// keys first (only those of the identity files with IdentitiesOnly), then
// the identity files (x/crypto tries a method of one name only once, so
// they must be one method); an encrypted key with a .pub beside it asks for
// its passphrase only when the server accepts it. Keyboard-interactive and
// password come last, on a terminal and without BatchMode only.
func (n *Native) auth(h SSHConfig) ([]ssh.AuthMethod, func()) {
	home := homeOf(n.As)
	tokens := map[byte]string{'h': h.HostName, 'n': h.Host, 'p': strconv.Itoa(h.Port), 'r': h.User, 'u': userOf(n.As), 'd': home}
	var paths []string
	for _, f := range h.IdentityFiles {
		paths = append(paths, ExpandPath(f, tokens, home))
	}
	prompt := n.Prompt
	if h.BatchMode {
		prompt = nil
	}
	closeAgent := func() {}
	var ag agent.ExtendedAgent
	sock := os.Getenv("SSH_AUTH_SOCK")
	switch a := h.IdentityAgent; {
	case strings.EqualFold(a, "none"):
		sock = ""
	case a != "" && a != "SSH_AUTH_SOCK":
		sock = ExpandPath(strings.TrimPrefix(strings.TrimSuffix(a, "}"), "${"), tokens, home)
		if strings.HasPrefix(a, "$") {
			sock = os.Getenv(strings.Trim(a, "${}"))
		}
	}
	if sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			closeAgent = func() { conn.Close() }
			ag = agent.NewClient(conn)
		} else {
			n.logf("spawn: the ssh-agent at %s is not reachable: %v", sock, err)
		}
	}
	methods := []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var signers []ssh.Signer
		seen := map[string]bool{}
		add := func(s ssh.Signer) {
			if k := string(s.PublicKey().Marshal()); !seen[k] {
				seen[k] = true
				signers = append(signers, s)
			}
		}
		if ag != nil {
			if all, err := ag.Signers(); err == nil {
				want := publicKeys(paths)
				for _, s := range all {
					if !h.IdentitiesOnly || want[string(s.PublicKey().Marshal())] {
						add(s)
					}
				}
			}
		}
		for _, p := range paths {
			if s := n.identity(p, prompt); s != nil {
				add(s)
			}
		}
		return signers, nil
	})}
	if prompt != nil {
		methods = append(methods,
			ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i, q := range questions {
					a, err := prompt(sanitizeLine(q))
					if err != nil {
						return nil, err
					}
					answers[i] = a
				}
				return answers, nil
			}),
			ssh.PasswordCallback(func() (string, error) { return prompt(fmt.Sprintf("%s@%s's password: ", h.User, h.HostName)) }))
	}
	return methods, closeAgent
}

// identity loads an identity file as a signer, or nil. An encrypted key
// with its .pub beside it becomes a signer that asks for the passphrase
// when it first signs, that is, when the server accepted the key.
func (n *Native) identity(path string, prompt func(string) (string, error)) ssh.Signer {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s, err := ssh.ParsePrivateKey(b)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return s
	case !errors.As(err, &missing) || prompt == nil:
		n.logf("spawn: skipping identity file %s: %v", path, err)
		return nil
	}
	pub := missing.PublicKey
	if pub == nil {
		if pb, err := os.ReadFile(path + ".pub"); err == nil {
			pub, _, _, _, _ = ssh.ParseAuthorizedKey(pb)
		}
	}
	unlock := func() (ssh.Signer, error) {
		pass, err := prompt(fmt.Sprintf("Enter passphrase for key '%s': ", path))
		if err != nil {
			return nil, err
		}
		return ssh.ParsePrivateKeyWithPassphrase(b, []byte(pass))
	}
	if pub == nil {
		s, err := unlock()
		if err != nil {
			n.logf("spawn: skipping identity file %s: %v", path, err)
			return nil
		}
		return s
	}
	return &lazySigner{pub: pub, unlock: unlock}
}

// lazySigner is an encrypted key: its public half is known, its private
// half is unlocked on the first signature.
type lazySigner struct {
	pub    ssh.PublicKey
	unlock func() (ssh.Signer, error)
	once   sync.Once
	s      ssh.Signer
	err    error
}

func (l *lazySigner) PublicKey() ssh.PublicKey { return l.pub }

func (l *lazySigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	l.once.Do(func() { l.s, l.err = l.unlock() })
	if l.err != nil {
		return nil, l.err
	}
	return l.s.Sign(rand, data)
}

// SignWithAlgorithm signs with the algorithm asked for (rsa-sha2-256 for
// an RSA key, say), as the unlocked key can.
func (l *lazySigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	l.once.Do(func() { l.s, l.err = l.unlock() })
	if l.err != nil {
		return nil, l.err
	}
	if as, ok := l.s.(ssh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(rand, data, algorithm)
	}
	return l.s.Sign(rand, data)
}

// sanitizeLine keeps a server's prompt text from carrying terminal escapes.
func sanitizeLine(s string) string { return text.Clean(s, false) }

// publicKeys reads the public halves of identity files (from FILE.pub, or
// from an unencrypted private key), as wire-format strings.
func publicKeys(paths []string) map[string]bool {
	out := map[string]bool{}
	for _, p := range paths {
		if b, err := os.ReadFile(p + ".pub"); err == nil {
			if k, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
				out[string(k.Marshal())] = true
				continue
			}
		}
		if b, err := os.ReadFile(p); err == nil {
			if s, err := ssh.ParsePrivateKey(b); err == nil {
				out[string(s.PublicKey().Marshal())] = true
			}
		}
	}
	return out
}

func fmtList(ss []string) string { return strings.Join(ss, ", ") }

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

var _ Conn = (*nativeConn)(nil)

// Runner runs a shell command on the server with stdin (nil: none) and
// returns its stdout; a failure carries the end of its stderr.
type Runner func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)

// run runs cmd in a session of its own on the connection.
func (c *nativeConn) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	s, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("opening a session: %w", err)
	}
	defer s.Close()
	var out bytes.Buffer
	errb := &tailWriter{max: 4096}
	s.Stdin, s.Stdout, s.Stderr = stdin, &out, errb
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	if err := s.Run(cmd); err != nil {
		// The end of stderr says why; a login banner comes first.
		msg := []rune(strings.TrimSpace(sanitizeLine(string(errb.b))))
		if len(msg) > 300 {
			msg = append([]rune("…"), msg[len(msg)-300:]...)
		}
		return nil, fmt.Errorf("%w: %s", err, string(msg))
	}
	return out.Bytes(), nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	b   []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}
