// Package record keeps one run's record in the session registry (package
// registry) current, on either side: what the session holds (device,
// addresses, routes) for the server's collision checks and limits and for
// finding a killed session's leftovers, and its state and counters every
// few seconds for "sshvpn status". It knows where each account's registry
// lives, and sweeps what killed sessions left behind.
package record

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/internal/statedir"
	"github.com/sshvpn/sshvpn/nat"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/router"
)

// Session is this process's record in the registry. A nil Session, or
// one without an entry, records nothing: a run without a registry still
// works, but a killed session's routes are then not found by the next.
type Session struct {
	reg   *registry.Registry
	entry *registry.Entry
	log   *slog.Logger
}

// Open opens this account's registry (see Dir), for a session that logs
// to log.
func Open(log *slog.Logger) (*Session, error) {
	reg, err := registry.Open(Dir())
	if err != nil {
		return nil, err
	}
	return &Session{reg: reg, log: log}, nil
}

// Registry is the registry the session is recorded in.
func (s *Session) Registry() *registry.Registry { return s.reg }

// Add records the session as rec (see registry.Registry.Add).
func (s *Session) Add(rec registry.Record) error {
	e, err := s.reg.Add(rec)
	if err != nil {
		return err
	}
	s.entry = e
	return nil
}

// SetEntry makes e, added under the registry's lock by its owner (the
// server's admission), the session's record.
func (s *Session) SetEntry(e *registry.Entry) { s.entry = e }

// Update changes the record with f, if there is one.
func (s *Session) Update(f func(*registry.Record)) {
	if s == nil || s.entry == nil {
		return
	}
	if err := s.entry.Update(f); err != nil {
		s.log.Debug("updating the session record", "err", err)
	}
}

// Dir is where the registry of this account lives: /run/sshvpn for
// root; an account that cannot write there (a setcap'd sshvpn, an
// unprivileged remote) keeps its own in /run/user/UID/sshvpn where its
// login session has that directory, else in ~/.local/state/sshvpn. Never
// in /tmp: a name there is anyone's to take first.
func Dir() string {
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

// Account is another account's registry directory, as root finds it.
type Account struct {
	Dir string
	UID int
}

// Others are the registries of other accounts that root can read:
// their sessions' routes are theirs, not leftovers. Each is where that
// account's own sessions put it, under a directory that only the account
// (or root) can create: /run/user/UID, or the home directory the password
// database gives it.
func Others() []Account {
	var out []Account
	seen := map[string]bool{}
	add := func(dir string, uid int) {
		if uid > 0 && !seen[dir] && isDir(dir) {
			seen[dir] = true
			out = append(out, Account{dir, uid})
		}
	}
	m, _ := filepath.Glob("/run/user/*/sshvpn")
	for _, d := range m {
		if uid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			add(d, uid)
		}
	}
	// The homes the password database gives, and those of running
	// sshvpn processes (an account only NSS knows, or a HOME of its own):
	// in either case the directory must be the account's (see OpenOther).
	for _, u := range append(passwd("/etc/passwd"), running()...) {
		if u.home != "" && u.home != "/" {
			add(filepath.Join(u.home, homeStateDir), u.uid)
		}
	}
	return out
}

// running lists the accounts of the running sshvpn processes, with the
// HOME each runs with, as root reads them in /proc.
func running() []passwdEntry {
	entries, _ := os.ReadDir("/proc")
	var out []passwdEntry
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || !strings.HasPrefix(filepath.Base(exe), "sshvpn") {
			continue
		}
		_, euid, ok := proc.UIDs(pid)
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if !ok || err != nil || euid == 0 {
			continue
		}
		for kv := range strings.SplitSeq(string(env), "\x00") {
			if home, ok := strings.CutPrefix(kv, "HOME="); ok && filepath.IsAbs(home) {
				out = append(out, passwdEntry{euid, filepath.Clean(home)})
			}
		}
	}
	return out
}

// All lists the live sessions this account can see, in every network
// namespace: its own registry and, for root, every account's, each read
// only through records that account wrote of its own processes.
func All() ([]registry.Record, error) {
	var regs []*registry.Registry
	if _, err := os.Lstat(Dir()); err == nil {
		reg, err := registry.Open(Dir())
		if err != nil {
			return nil, err
		}
		regs = append(regs, reg)
	}
	if os.Geteuid() == 0 {
		for _, a := range Others() {
			if reg, err := registry.OpenOther(a.Dir, a.UID); err == nil {
				regs = append(regs, reg)
			}
		}
	}
	var recs []registry.Record
	for _, reg := range regs {
		more, err := reg.ListAll()
		if err != nil {
			return nil, err
		}
		recs = append(recs, more...)
	}
	slices.SortStableFunc(recs, func(a, b registry.Record) int { return a.Started.Compare(b.Started) })
	return recs, nil
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

// Routes records the routes the router holds (router.Options.Record).
func (s *Session) Routes(rs []router.Route) {
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

// Tunnel records the tunnel's addresses.
func (s *Session) Tunnel(t policy.Tunnel) {
	s.Update(func(rec *registry.Record) { rec.Addrs, rec.PeerAddrs = t.Addrs, t.PeerAddrs })
}

// Shared reports whether another live session in this network namespace
// holds route r too.
func (s *Session) Shared(r router.Route) bool {
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
func (s *Session) live() []registry.Record {
	recs, _ := s.reg.List()
	if os.Geteuid() == 0 {
		for _, a := range Others() {
			if r, err := registry.OpenOther(a.Dir, a.UID); err == nil {
				more, _ := r.List()
				recs = append(recs, more...)
			}
		}
	}
	return recs
}

// Close removes the record.
func (s *Session) Close() {
	if s != nil && s.entry != nil {
		s.entry.Remove()
	}
}

// Sweep removes the NAT state of sessions that are gone (see nat.Cleanup)
// and the routes that sshvpn sessions added (router.RouteProtocol)
// and that no live session in this network namespace holds: what a session
// killed outright (kill -9, a crash) left behind, such as the pinned route
// to its SSH server. Only root sweeps: it alone can see every account's
// registry, and so tell a leftover from another account's live route.
func (s *Session) Sweep(admin ...any) {
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
	routes, err := router.ListRoutes(router.RouteProtocol)
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
