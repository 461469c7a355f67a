package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/internal/statedir"
	"github.com/sshvpn/sshvpn/nat"
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
// unprivileged remote) keeps its own in /run/user/UID/sshvpn where its
// login session has that directory, else in ~/.local/state/sshvpn. Never
// in /tmp: a name there is anyone's to take first.
func registryDir() string {
	euid := os.Geteuid()
	if euid == 0 {
		return registry.DefaultDir
	}
	if d := fmt.Sprintf("/run/user/%d", euid); ownedDir(d, euid) {
		return filepath.Join(d, "sshvpn")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		if u, uerr := user.Current(); uerr == nil {
			home = u.HomeDir
		}
	}
	return filepath.Join(home, homeStateDir)
}

// homeStateDir is the registry's place under an account's home directory.
const homeStateDir = ".local/state/sshvpn"

// account is another account's registry directory, as root finds it.
type account struct {
	dir string
	uid int
}

// otherRegistries are the registries of other accounts that root can read:
// their sessions' routes are theirs, not leftovers. Each is where that
// account's own sessions put it, under a directory that only the account
// (or root) can create: /run/user/UID, or the home directory the password
// database gives it.
func otherRegistries() []account {
	var out []account
	seen := map[string]bool{}
	add := func(dir string, uid int) {
		if uid > 0 && !seen[dir] && isDir(dir) {
			seen[dir] = true
			out = append(out, account{dir, uid})
		}
	}
	m, _ := filepath.Glob("/run/user/*/sshvpn")
	for _, d := range m {
		if uid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			add(d, uid)
		}
	}
	for _, u := range passwd("/etc/passwd") {
		if u.home != "" && u.home != "/" {
			add(filepath.Join(u.home, homeStateDir), u.uid)
		}
	}
	return out
}

type passwdEntry struct {
	uid  int
	home string
}

// passwd reads the accounts of a passwd(5) file.
func passwd(file string) []passwdEntry {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []passwdEntry
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 7 {
			continue
		}
		if uid, err := strconv.Atoi(f[2]); err == nil && filepath.IsAbs(f[5]) {
			out = append(out, passwdEntry{uid, filepath.Clean(f[5])})
		}
	}
	return out
}

func isDir(d string) bool {
	fi, err := os.Stat(d)
	return err == nil && fi.IsDir()
}

// ownedDir reports whether d is a real directory of account uid.
func ownedDir(d string, uid int) bool {
	fi, err := os.Lstat(d)
	return err == nil && fi.IsDir() && statedir.Owner(fi) == uid
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
		for _, a := range otherRegistries() {
			if r, err := registry.OpenOther(a.dir, a.uid); err == nil {
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

// sweep removes the NAT state of sessions that are gone (see nat.Cleanup)
// and the routes that sshvpn sessions added (router.RouteProtocol)
// and that no live session in this network namespace holds: what a session
// killed outright (kill -9, a crash) left behind, such as the pinned route
// to its SSH server. Only root sweeps: it alone can see every account's
// registry, and so tell a leftover from another account's live route.
func (s *session) sweep(admin ...any) {
	if s == nil || s.reg == nil || os.Geteuid() != 0 {
		return
	}
	// What a killed --nat session left (its rules, its claim on the
	// forwarding sysctls) goes too, whether or not this session uses
	// --nat: a non-NAT session must not be forwarded meanwhile.
	if err := nat.Cleanup(s.reg.Dir(), func(f string, a ...any) { s.log.Info(fmt.Sprintf(f, a...), admin...) }); err != nil {
		s.log.Warn("sweeping what --nat sessions left behind", append([]any{"err", err}, admin...)...)
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
