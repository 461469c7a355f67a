package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/router"
)

// session is this process's record in the registry: what the session
// holds (device, addresses, routes), for the server's collision checks and
// limits, and for finding a killed session's routes.
type session struct {
	reg   *registry.Registry
	entry *registry.Entry
	log   *slog.Logger
}

// registryDir is where the registry of this account lives: /run/sshvpn for
// root; an account that cannot write there (a setcap'd sshvpn, an
// unprivileged remote) keeps its own under /run/user/UID or /tmp.
func registryDir() string {
	if os.Geteuid() == 0 {
		return registry.DefaultDir
	}
	if d := fmt.Sprintf("/run/user/%d", os.Geteuid()); isDir(d) {
		return filepath.Join(d, "sshvpn")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("sshvpn-%d", os.Geteuid()))
}

// otherRegistries are the registries of other accounts that root can read:
// their sessions' routes are theirs, not leftovers.
func otherRegistries() []string {
	var dirs []string
	for _, pattern := range []string{"/run/user/*/sshvpn", filepath.Join(os.TempDir(), "sshvpn-*")} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	return dirs
}

func isDir(d string) bool {
	fi, err := os.Stat(d)
	return err == nil && fi.IsDir()
}

// routes records the routes the router holds.
func (s *session) routes(rs []router.Route) {
	if s == nil || s.entry == nil {
		return
	}
	out := make([]registry.Route, len(rs))
	for i, r := range rs {
		out[i] = registry.Route{Dst: r.Dst.Masked(), Gw: r.Gw, Dev: r.Dev}
	}
	if err := s.entry.Update(func(rec *registry.Record) { rec.Added = out }); err != nil {
		s.log.Debug("recording routes", "err", err)
	}
}

// tunnel records the tunnel's addresses.
func (s *session) tunnel(t sshvpn.Tunnel) error {
	if s == nil || s.entry == nil {
		return nil
	}
	if err := s.entry.Update(func(rec *registry.Record) { rec.Addrs, rec.PeerAddrs = t.Addrs, t.PeerAddrs }); err != nil {
		s.log.Debug("recording the tunnel", "err", err)
	}
	return nil
}

// shared reports whether another live session in this network namespace
// holds route r too.
func (s *session) shared(r router.Route) bool {
	if s == nil || s.reg == nil {
		return false
	}
	want := registry.Route{Dst: r.Dst.Masked(), Gw: r.Gw, Dev: r.Dev}
	for _, rec := range s.live() {
		if rec.PID != os.Getpid() && slices.Contains(rec.Added, want) {
			return true
		}
	}
	return false
}

// live lists the live sessions in this network namespace, in this
// account's registry and, for root, in every account's.
func (s *session) live() []registry.Record {
	recs, _ := s.reg.List()
	if os.Geteuid() == 0 {
		for _, d := range otherRegistries() {
			if r, err := registry.OpenExisting(d); err == nil {
				more, _ := r.List()
				recs = append(recs, more...)
			}
		}
	}
	return recs
}

// close removes the record.
func (s *session) close() {
	if s != nil && s.entry != nil {
		s.entry.Remove()
	}
}

// sweep removes the routes that sshvpn sessions added (router.RouteProtocol)
// and that no live session in this network namespace holds: what a session
// killed outright (kill -9, a crash) left behind, such as the pinned route
// to its SSH server. Only root sweeps: it alone can see every account's
// registry, and so tell a leftover from another account's live route.
func (s *session) sweep(admin ...any) {
	if s == nil || s.reg == nil || os.Geteuid() != 0 {
		return
	}
	unlock, err := s.reg.Lock()
	if err != nil {
		s.log.Debug("not looking for stale routes", "err", err)
		return
	}
	defer unlock()
	// Routes first, records second: a route added after this listing is
	// not judged, and one added before it was recorded before it.
	routes, err := router.Routes(router.RouteProtocol)
	if err != nil || len(routes) == 0 {
		return
	}
	owned := map[registry.Route]bool{}
	for _, rec := range s.live() {
		for _, r := range rec.Added {
			owned[r] = true
		}
	}
	for _, r := range routes {
		if owned[registry.Route{Dst: r.Dst.Masked(), Gw: r.Gw, Dev: r.Dev}] {
			continue
		}
		if err := router.DelRoute(r); err != nil {
			s.log.Debug("removing a stale route", "route", r, "err", err)
			continue
		}
		s.log.Info("removed a route that an earlier sshvpn session left behind", append([]any{"route", r}, admin...)...)
	}
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
