// Package hook runs sshvpn's up and down scripts: an executable run with a
// documented environment, its output sent to the log line by line, and a
// time limit.
//
// The environment is Runner.BaseEnv (by default the process's own, less any
// stale variables of the list below) plus:
//
//	SSHVPN_SIDE         local (the side that ran ssh) or remote
//	SSHVPN_SCRIPT_TYPE  up or down
//	SSHVPN_DEV          the device name, such as tun0
//	SSHVPN_MODE         tun or tap
//	SSHVPN_MTU          the device MTU
//	SSHVPN_ADDRS        this side's tunnel addresses, space-separated CIDRs
//	SSHVPN_PEER_ADDRS   the other side's tunnel addresses
//	SSHVPN_ROUTES       the networks routed into the tunnel on this side
//	SSHVPN_SERVER       the SSH server's address (local side only)
//	SSHVPN_PEER         the SSH client's address (remote side only, from
//	                    SSH_CONNECTION)
//	SSHVPN_SCRIPT_CONTEXT  init when the link first comes up and when it
//	                    finally goes down; restart for the hooks run around
//	                    a reconnect (only with --rehook)
package hook

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is what a hook is told about the tunnel.
type Env struct {
	Side      string // "local" or "remote"
	Dev       string
	Mode      string
	MTU       int
	Addrs     []netip.Prefix
	PeerAddrs []netip.Prefix
	Routes    []netip.Prefix
	Server    string // local side: the SSH server's address
	Peer      string // remote side: the SSH client's address
	Context   string // "init" (the default) or "restart"
}

// Vars returns the SSHVPN_* variables for a hook of type typ (up or down).
func (e Env) Vars(typ string) []string {
	v := []string{
		"SSHVPN_SIDE=" + e.Side,
		"SSHVPN_SCRIPT_TYPE=" + typ,
		"SSHVPN_DEV=" + e.Dev,
		"SSHVPN_MODE=" + e.Mode,
		"SSHVPN_MTU=" + strconv.Itoa(e.MTU),
		"SSHVPN_ADDRS=" + join(e.Addrs),
		"SSHVPN_PEER_ADDRS=" + join(e.PeerAddrs),
		"SSHVPN_ROUTES=" + join(e.Routes),
		"SSHVPN_SCRIPT_CONTEXT=" + cmp.Or(e.Context, "init"),
	}
	if e.Side == "local" {
		v = append(v, "SSHVPN_SERVER="+e.Server)
	} else {
		v = append(v, "SSHVPN_PEER="+e.Peer)
	}
	return v
}

// documented are the variables Vars sets; inherited drops them from the
// process's own environment, so a hook never sees a stale one (such as
// SSHVPN_PEER on the local side). Others, like settings for the scripts in
// scripts/, pass through.
var documented = []string{"SSHVPN_SIDE", "SSHVPN_SCRIPT_TYPE", "SSHVPN_DEV", "SSHVPN_MODE", "SSHVPN_MTU",
	"SSHVPN_ADDRS", "SSHVPN_PEER_ADDRS", "SSHVPN_ROUTES", "SSHVPN_SERVER", "SSHVPN_PEER", "SSHVPN_SCRIPT_CONTEXT"}

func inherited() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(documented, k) {
			env = append(env, kv)
		}
	}
	return env
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// DefaultTimeout is how long a hook may run when Runner.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Runner runs a link's up and down hooks. The down hook runs once after
// each up step that succeeded, never more, and never without one.
type Runner struct {
	Up, Down string        // script paths; empty means none
	Timeout  time.Duration // per hook; DefaultTimeout when zero
	Log      *slog.Logger
	// BaseEnv, if not nil, replaces the process's environment as the base
	// the SSHVPN_* variables are added to.
	BaseEnv []string

	mu  sync.Mutex
	env *Env // set once up succeeded: the down hook is due
}

// RunUp runs the up hook, if any, and arms the down hook. A hook that fails
// returns an error carrying its exit status and the end of its stderr.
func (r *Runner) RunUp(e Env) error {
	if r.Up != "" {
		if err := r.run("up", r.Up, e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.env = &e
	r.mu.Unlock()
	return nil
}

// Update changes the environment the armed down hook will get, as when the
// tunnel changed without the up hook running again.
func (r *Runner) Update(e Env) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.env != nil {
		r.env = &e
	}
}

// RunDown runs the down hook if an up step succeeded since it last ran,
// with the environment of that up step (and context, if not empty).
// Otherwise it does nothing.
func (r *Runner) RunDown(context string) error {
	r.mu.Lock()
	e := r.env
	r.env = nil
	r.mu.Unlock()
	if e == nil || r.Down == "" {
		return nil
	}
	env := *e
	if context != "" {
		env.Context = context
	}
	return r.run("down", r.Down, env)
}

func (r *Runner) run(typ, script string, e Env) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("hook", typ, "script", script)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	base := r.BaseEnv
	if base == nil {
		base = inherited()
	}
	cmd.Env = append(slices.Clone(base), e.Vars(typ)...)
	cmd.Stdin = nil
	// The hook runs in its own process group, and a timeout kills the whole
	// group, so that children the script waits for die with it. WaitDelay
	// then closes the pipes that anything else left behind still holds.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var tail tailBuffer
	stdout := &lineWriter{f: func(s string) { log.Info(s, "stream", "stdout") }}
	stderr := &lineWriter{f: func(s string) { tail.add(s); log.Info(s, "stream", "stderr") }}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	log.Debug("running hook")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hook: %s script %s: %w", typ, script, err)
	}
	err := cmd.Wait()
	stdout.flush()
	stderr.flush()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("hook: %s script %s did not finish within %v (--hook-timeout) and was killed", typ, script, timeout)
	case errors.Is(err, exec.ErrWaitDelay):
		log.Warn("the hook exited but left a process behind that holds its output; redirect that process's output (>/dev/null 2>&1)")
	case err != nil:
		msg := fmt.Sprintf("hook: %s script %s failed: %v", typ, script, err)
		if t := tail.String(); t != "" {
			msg += ": " + t
		}
		return errors.New(msg)
	}
	return nil
}

// lineWriter calls f for each line written to it; exec copies a hook's
// output into it.
type lineWriter struct {
	f   func(string)
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.f(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // an overlong line: log what we have
		w.flush()
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.f(string(w.buf))
		w.buf = nil
	}
}

// tailBuffer keeps the last few lines of a hook's stderr for its error.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 5 {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b bytes.Buffer
	for i, l := range t.lines {
		if i > 0 {
			b.WriteString(" / ")
		}
		b.WriteString(l)
	}
	return b.String()
}
