package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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

	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tunnel"
)

// admission decides, with the registry's lock held, whether a new remote
// session may take its tunnel's addresses, device and routes on this
// server, and records it if so. What another live session holds is refused,
// with two exceptions: the same client reconnecting (its resume token
// matches) takes over from its own older session, and with --replace a
// newer session of the same key does. The older session is told and ends
// first; the lock is not held while it cleans up.
type admission struct {
	reg     *registry.Registry
	id      Identity
	max     int            // sessions per key; 0 for no limit
	replace bool           // a newer session of the same key replaces an older one
	resume  string         // the hash of the client's resume token
	routes  []netip.Prefix // the server's own --route, which this session will add
	wait    time.Duration  // how long an ended session may take to clean up
	log     *slog.Logger
}

// errReplaced ends a session that a newer one took over from.
var errReplaced = errors.New("this session was replaced by a newer session of the same key (the server's --replace policy)")

// errResumed ends a session whose client came back on a new connection.
var errResumed = errors.New("this session's client reconnected; the new connection takes over")

// resumeOld ends the older sessions of the same client (the same resume
// token) before this one draws a lease: a reconnecting client must not be
// refused by its own session, which the server has not yet seen die.
func (c *admission) resumeOld() error {
	if c.resume == "" {
		return nil
	}
	unlock, err := c.reg.Lock()
	if err != nil {
		return err
	}
	recs, err := c.others()
	unlock()
	if err != nil {
		return err
	}
	for _, r := range recs {
		if c.sameClient(r) {
			if err := c.evict(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// take checks that tunnel t (as this server sees it) collides with no other
// session and no address of the server, and records the session. dev is the
// device the session will use if known ("" when the kernel picks one);
// pooled sessions share the server's pool address on purpose, and their
// leases keep the clients' apart.
func (c *admission) take(t tunnel.Tunnel, dev string, lease int) (*registry.Entry, error) {
	for attempt := 0; ; attempt++ {
		unlock, err := c.reg.Lock()
		if err != nil {
			return nil, err
		}
		victim, err := c.conflict(t, dev, lease > 0)
		if err == nil && victim == nil {
			e, err := c.reg.Add(registry.Record{Side: registry.SideRemote, Dev: dev, Addrs: t.Addrs, PeerAddrs: t.PeerAddrs,
				Routes: slices.Concat(t.Routes, c.routes), Key: c.id.ID, User: c.id.User, Peer: c.id.Client, Lease: lease, Resume: c.resume})
			unlock()
			return e, err
		}
		unlock()
		if err != nil {
			return nil, err
		}
		if attempt > 8 {
			return nil, errors.New("the sessions this one replaces keep coming back")
		}
		if err := c.evict(*victim); err != nil {
			return nil, err
		}
	}
}

// others lists the live remote sessions but this one.
func (c *admission) others() ([]registry.Record, error) {
	recs, err := c.reg.List()
	if err != nil {
		return nil, err
	}
	var out []registry.Record
	for _, r := range recs {
		if r.Side == registry.SideRemote && r.PID != os.Getpid() {
			out = append(out, r)
		}
	}
	return out, nil
}

// conflict returns an older session to replace, or an error saying why this
// session may not start, or neither.
func (c *admission) conflict(t tunnel.Tunnel, dev string, pooled bool) (*registry.Record, error) {
	others, err := c.others()
	if err != nil {
		return nil, err
	}
	mine := func(r registry.Record) bool { return r.Key == c.id.ID }
	busy := func(r registry.Record, what string) (*registry.Record, error) {
		if c.sameClient(r) || (c.replace && mine(r)) {
			return &r, nil
		}
		on := "on " + r.Dev
		if r.Dev == "" {
			on = "that is starting"
		}
		if mine(r) {
			return nil, fmt.Errorf("%s is in use by another sshvpn session %s; this key allows one session at a time, or use --pool", what, on)
		}
		return nil, fmt.Errorf("%s is in use by another sshvpn session %s (of another key)", what, on)
	}
	tunnelAddrs := slices.Concat(t.Addrs, t.PeerAddrs)
	routes := slices.Concat(t.Routes, c.routes)
	for _, r := range others {
		theirs := slices.Concat(r.Addrs, r.PeerAddrs)
		if !pooled {
			for _, a := range tunnelAddrs {
				if slices.ContainsFunc(theirs, func(b netip.Prefix) bool { return a.Masked().Overlaps(b.Masked()) }) {
					return busy(r, "address "+a.String())
				}
			}
		}
		if dev != "" && r.Dev == dev {
			return busy(r, "device "+dev)
		}
		for _, route := range routes {
			for _, a := range slices.Concat(theirs, r.Routes, routeDsts(r.Added)) {
				if route.Overlaps(a.Masked()) {
					return busy(r, "the route "+route.String()+" (it overlaps "+a.Masked().String()+")")
				}
			}
		}
	}
	if !pooled {
		nets, err := router.Nets()
		if err != nil {
			return nil, err
		}
		for _, a := range tunnelAddrs {
			for _, n := range nets {
				if n.Dev == dev || !a.Masked().Overlaps(n.Prefix.Masked()) {
					continue
				}
				held := slices.ContainsFunc(others, func(r registry.Record) bool { return r.Dev == n.Dev })
				if n.Prefix.Addr() == a.Addr() && dev == "" && tun.IsTun(n.Dev) && !held {
					return nil, fmt.Errorf("address %v is in use on this server (%v); if %s is the device prepared for this key, name it in the key's command (--dev %s), or, if this account owns it, connect with --remote-dev %s", a, n, n.Dev, n.Dev, n.Dev)
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

// evict tells an older session to end, and waits for it to clean up (its
// down hook included); one that does not is killed.
func (c *admission) evict(r registry.Record) error {
	h := r.Holder()
	if !h.Alive() {
		return nil
	}
	reason, what := "replaced", "replacing an older session of this key"
	if c.sameClient(r) {
		reason, what = "resumed", "the client reconnected; taking over from its older session"
	}
	c.log.Warn(what, "pid", r.PID, "dev", r.Dev, "old_client", r.Peer, tunnel.AdminOnly)
	// Why, for the old session to tell its client; SIGUSR2 says "end".
	os.WriteFile(endedFile(c.reg.Dir(), r.PID), []byte(reason), 0o600)
	if err := syscall.Kill(r.PID, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("cannot end the older session on %s (pid %d): %w", r.Dev, r.PID, err)
	}
	deadline := time.Now().Add(c.wait)
	for h.Alive() {
		if time.Now().After(deadline) {
			c.log.Warn("the older session did not end in time; killing it", "pid", r.PID, tunnel.AdminOnly)
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
			break // the registry drops a dead process's record itself
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// sameClient reports whether r is an older session of this client: the same
// resume token, and the same key.
func (c *admission) sameClient(r registry.Record) bool {
	return sameToken(r.Resume, c.resume) && r.Key == c.id.ID
}

// endedFile is where a session that ends another leaves the reason.
func endedFile(dir string, pid int) string {
	return filepath.Join(dir, "ended-"+strconv.Itoa(pid))
}

// endedBy reads (and removes) why another session ended this one.
func endedBy(dir string) error {
	name := endedFile(dir, os.Getpid())
	b, _ := os.ReadFile(name)
	os.Remove(name)
	if string(b) == "resumed" {
		return errResumed
	}
	return errReplaced
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

// tokenHash is what the registry keeps of a resume token: its SHA-256, so
// that a record never reveals the token itself.
func tokenHash(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// sameToken compares two token hashes in constant time.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
