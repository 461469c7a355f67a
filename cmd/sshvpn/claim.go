package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tun"
)

// claim decides, with the registry's lock held, whether a new remote
// session may take its tunnel's addresses, device and routes on this
// server, and records it if so. What another live session holds is refused,
// unless it is a session of the same key and the admin allows replacing
// (--replace): then the older session is told and ends first.
type claim struct {
	reg     *registry.Registry
	id      identity
	max     int  // sessions per key; 0 for no limit
	replace bool // a newer session of the same key replaces an older one
	log     *slog.Logger
}

// replaceWait bounds how long a new session waits for the one it replaces
// to clean up (its down hook included) before killing it.
var replaceWait = 15 * time.Second

// errReplaced ends a session that a newer one of the same key replaced.
var errReplaced = errors.New("this session was replaced by a newer session of the same key (the server's --replace policy)")

// take checks that tunnel t (as this server sees it) collides with no other
// session and no address of the server, and records the session. dev is the
// device the session will use if known ("" when the kernel picks one);
// pooled sessions share the server's pool address on purpose, and their
// leases keep the clients' apart.
func (c *claim) take(t sshvpn.Tunnel, dev string, lease int) (*registry.Entry, error) {
	unlock, err := c.reg.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		victim, err := c.conflict(t, dev, lease > 0)
		if err != nil {
			return nil, err
		}
		if victim == nil {
			break
		}
		if attempt > 8 {
			return nil, errors.New("the sessions this one replaces keep coming back")
		}
		if err := c.evict(*victim); err != nil {
			return nil, err
		}
	}
	return c.reg.Add(registry.Record{Side: registry.SideRemote, Dev: dev, Addrs: t.Addrs, PeerAddrs: t.PeerAddrs,
		Key: c.id.ID, User: c.id.User, Peer: c.id.Client, Lease: lease})
}

// conflict returns an older session to replace, or an error saying why this
// session may not start, or neither.
func (c *claim) conflict(t sshvpn.Tunnel, dev string, pooled bool) (*registry.Record, error) {
	recs, err := c.reg.List()
	if err != nil {
		return nil, err
	}
	var others []registry.Record
	for _, r := range recs {
		if r.Side == registry.SideRemote && r.PID != os.Getpid() {
			others = append(others, r)
		}
	}
	mine := func(r registry.Record) bool { return r.Key == c.id.ID }
	busy := func(r registry.Record, what string) (*registry.Record, error) {
		if c.replace && mine(r) {
			return &r, nil
		}
		if mine(r) {
			return nil, fmt.Errorf("%s is in use by another sshvpn session on %s; this key allows one session at a time, or use --pool (the server's --replace lets a new session take over, as after a client's reboot)", what, r.Dev)
		}
		return nil, fmt.Errorf("%s is in use by another sshvpn session on %s (of another key)", what, r.Dev)
	}
	tunnelAddrs := slices.Concat(t.Addrs, t.PeerAddrs)
	for _, r := range others {
		if !pooled {
			for _, a := range tunnelAddrs {
				if slices.ContainsFunc(slices.Concat(r.Addrs, r.PeerAddrs), func(b netip.Prefix) bool { return a.Masked().Overlaps(b.Masked()) }) {
					return busy(r, "address "+a.String())
				}
			}
		}
		if dev != "" && r.Dev == dev {
			return busy(r, "device "+dev)
		}
		for _, route := range t.Routes {
			for _, a := range slices.Concat(r.Addrs, r.PeerAddrs, routeDsts(r.Added)) {
				if route.Overlaps(a.Masked()) {
					return busy(r, "the route "+route.String()+" (it overlaps "+a.String()+")")
				}
			}
		}
	}
	if !pooled {
		nets, err := tun.Nets()
		if err != nil {
			return nil, err
		}
		for _, a := range tunnelAddrs {
			for _, n := range nets {
				if n.Dev == dev || !a.Masked().Overlaps(n.Prefix.Masked()) {
					continue
				}
				if n.Prefix.Addr() == a.Addr() && dev == "" && tun.IsTun(n.Dev) {
					return nil, fmt.Errorf("address %v is in use on this server (%v); if %s is the device prepared for this key, name it in the key's command (--dev %s)", a, n, n.Dev, n.Dev)
				}
				if n.Prefix.Addr() == a.Addr() {
					return nil, fmt.Errorf("address %v is in use on this server (%v); choose tunnel addresses the server does not have", a, n)
				}
				return nil, fmt.Errorf("address %v overlaps %v, a network this server is on; choose tunnel addresses outside the server's networks", a, n)
			}
		}
	}
	if c.max > 0 {
		var same []registry.Record
		for _, r := range others {
			if mine(r) {
				same = append(same, r)
			}
		}
		if len(same) >= c.max {
			if c.replace {
				return &same[0], nil // the oldest
			}
			return nil, fmt.Errorf("this key allows %s at a time (the server's --max-sessions), and %s running", sessions(c.max), isAre(len(same)))
		}
	}
	return nil, nil
}

// evict tells an older session of this key to end, and waits for it to
// clean up; one that does not is killed.
func (c *claim) evict(r registry.Record) error {
	c.log.Warn("replacing an older session of this key", "pid", r.PID, "dev", r.Dev, "old_client", r.Peer, sshvpn.AdminOnly)
	h := r.Holder()
	if !h.Alive() {
		return nil
	}
	if err := syscall.Kill(r.PID, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("cannot replace the session on %s (pid %d): %w", r.Dev, r.PID, err)
	}
	deadline := time.Now().Add(replaceWait)
	for h.Alive() {
		if time.Now().After(deadline) {
			c.log.Warn("the replaced session did not end in time; killing it", "pid", r.PID, sshvpn.AdminOnly)
			syscall.Kill(r.PID, syscall.SIGKILL)
			for range 100 {
				if !h.Alive() {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if h.Alive() {
				return fmt.Errorf("the session on %s (pid %d) this one replaces does not end", r.Dev, r.PID)
			}
			os.Remove(filepath.Join(c.reg.Dir(), "session-"+strconv.Itoa(r.PID)+".json"))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func routeDsts(rs []registry.Route) []netip.Prefix {
	out := make([]netip.Prefix, len(rs))
	for i, r := range rs {
		out[i] = r.Dst
	}
	return out
}

func sessions(n int) string {
	if n == 1 {
		return "1 session"
	}
	return strconv.Itoa(n) + " sessions"
}

func isAre(n int) string {
	if n == 1 {
		return "1 is"
	}
	return strconv.Itoa(n) + " are"
}

// stateDir is the directory for state: flag as it is, except that an
// account other than root, which cannot write the default, gets one of its
// own. The registry always uses the default (one place to find every
// session of the machine); --state-dir moves a pool's leases.
func stateDir(flag string) string {
	if flag != registry.DefaultDir || os.Geteuid() == 0 {
		return flag
	}
	if d := fmt.Sprintf("/run/user/%d", os.Geteuid()); isDir(d) {
		return filepath.Join(d, "sshvpn")
	}
	if home, err := os.UserHomeDir(); err == nil && isDir(home) {
		return filepath.Join(home, ".cache", "sshvpn")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("sshvpn-%d", os.Geteuid()))
}

func isDir(d string) bool {
	fi, err := os.Stat(d)
	return err == nil && fi.IsDir()
}
