// Package hook runs sshvpn's up and down scripts: an executable run with a
// documented environment, its output sent to the log line by line, and a
// time limit.
//
// The environment is the process's own plus:
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
package hook

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
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
	}
	if e.Side == "local" {
		v = append(v, "SSHVPN_SERVER="+e.Server)
	} else {
		v = append(v, "SSHVPN_PEER="+e.Peer)
	}
	return v
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

// Runner runs one session's up and down hooks. The down hook runs at most
// once, and only after the up step succeeded.
type Runner struct {
	Up, Down string        // script paths; empty means none
	Timeout  time.Duration // per hook; DefaultTimeout when zero
	Log      *slog.Logger

	mu   sync.Mutex
	env  *Env // set once up succeeded: the down hook is due
	done bool
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

// RunDown runs the down hook if the up step succeeded and it has not run
// yet. Later calls do nothing.
func (r *Runner) RunDown() error {
	r.mu.Lock()
	e, due := r.env, r.env != nil && !r.done
	r.done = true
	r.mu.Unlock()
	if !due || r.Down == "" {
		return nil
	}
	return r.run("down", r.Down, *e)
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
	cmd.Env = append(os.Environ(), e.Vars(typ)...)
	cmd.Stdin = nil
	cmd.WaitDelay = time.Second
	var tail tailBuffer
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	log.Debug("running hook")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hook: %s script %s: %w", typ, script, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); lines(stdout, func(s string) { log.Info(s, "stream", "stdout") }) }()
	go func() {
		defer wg.Done()
		lines(stderr, func(s string) { tail.add(s); log.Info(s, "stream", "stderr") })
	}()
	wg.Wait()
	err := cmd.Wait()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("hook: %s script %s did not finish within %v (--hook-timeout) and was killed", typ, script, timeout)
	case err != nil:
		msg := fmt.Sprintf("hook: %s script %s failed: %v", typ, script, err)
		if t := tail.String(); t != "" {
			msg += ": " + t
		}
		return errors.New(msg)
	}
	return nil
}

func lines(r io.Reader, f func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		f(sc.Text())
	}
	io.Copy(io.Discard, r)
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
