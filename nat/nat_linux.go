package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/vishvananda/netns"
)

// enableGateway is Enable on Linux.
func enableGateway(cfg Config) (*Gateway, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Dev == "" || len(cfg.Dev) > 15 || strings.ContainsAny(cfg.Dev, "/ \t\n") {
		return nil, fmt.Errorf("nat: %q is not a device name", cfg.Dev)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("nat: no state directory")
	}
	clients, err := normalize(cfg.Clients)
	if err != nil {
		return nil, err
	}
	h := cfg.Holder
	if h == (proc.Holder{}) {
		h = proc.Self()
	}
	if h.PID <= 0 || h.Start == "" || strings.ContainsAny(h.Start, " \t\n") {
		return nil, fmt.Errorf("nat: %v does not identify a process", h)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("nat: state directory: %w", err)
	}

	// Netlink sockets and /proc/sys belong to the namespace of the thread
	// that opens them: stay on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("nat: network namespace: %w", err)
	}
	g := &Gateway{
		id:      session{PID: h.PID, Start: h.Start, Dev: cfg.Dev},
		clients: clients,
		dir:     cfg.StateDir,
		logf:    logf,
		ns:      ns,
		nsKey:   proc.NetNS(),
	}
	unlock, err := lockState(g.dir)
	if err != nil {
		ns.Close()
		return nil, err
	}
	defer unlock()
	if err := g.enable(); err != nil {
		if rerr := g.release(); rerr != nil {
			logf("nat: undoing what %s did: %v", g.id, rerr)
		}
		ns.Close()
		return nil, err
	}
	return g, nil
}

// shutdown is Close on Linux.
func (g *Gateway) shutdown() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	defer g.ns.Close()

	runtime.LockOSThread()
	cur, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("nat: network namespace: %w", err)
	}
	defer cur.Close()
	if !cur.Equal(g.ns) {
		// Called from another namespace: go to the gateway's for the
		// time it takes, and back.
		if err := netns.Set(g.ns); err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("nat: entering the gateway's network namespace: %w", err)
		}
		defer func() {
			if err := netns.Set(cur); err != nil {
				return // the thread stays locked and goes away with its goroutine
			}
			runtime.UnlockOSThread()
		}()
	} else {
		defer runtime.UnlockOSThread()
	}

	unlock, err := lockState(g.dir)
	if err != nil {
		return err
	}
	defer unlock()
	return g.release()
}

// cleanupState is Cleanup on Linux.
func cleanupState(stateDir string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("nat: network namespace: %w", err)
	}
	defer ns.Close()
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Nothing recorded and no table: nothing to do, and no lock file
	// made for it. (A session records its state before it adds a rule.)
	if _, err := os.Lstat(filepath.Join(stateDir, stateFile)); errors.Is(err, os.ErrNotExist) {
		if exists, err := tableExists(ns); err != nil || !exists {
			return nil // (a kernel without nf_tables has no table of ours)
		}
	}
	unlock, err := lockState(stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	// A gateway of no session: release removes nothing of a live one.
	g := &Gateway{dir: stateDir, logf: logf, ns: ns, nsKey: proc.NetNS()}
	return g.release()
}

// enable does Enable's work under the state lock. On error, release undoes
// it.
func (g *Gateway) enable() error {
	keys := sysctlsFor(families(g.clients))
	st, err := loadState(g.dir)
	if err != nil {
		return err
	}
	nss := st.namespace(g.nsKey)
	g.prune(nss)
	nss.remove(g.id)
	nss.Sessions = append(nss.Sessions, sessionState{session: g.id, Sysctls: keys})
	var turnOn []string
	for _, k := range keys {
		v, err := readSysctl(k)
		if err != nil {
			return err
		}
		if _, ok := nss.Saved[k]; !ok {
			nss.Saved[k] = v
		}
		if v != "1" {
			turnOn = append(turnOn, k)
		}
	}
	// Sysctls only sessions now gone needed go back, before the guards
	// that went with them.
	settleErr := settle(nss, g.logf)
	// What to put back is on disk before anything changes.
	if err := st.save(g.dir); err != nil {
		return err
	}

	// The guards are in place before forwarding goes on.
	if err := syncRules(g.ns, g.id, sessionRules(g.id, g.clients), guardedFamilies(nss), g.logf); err != nil {
		return err
	}
	for _, k := range turnOn {
		if k == sysctlIPv6 {
			warnRA(raDefaults(g.ns), g.logf)
		}
		if err := writeSysctl(k, "1"); err != nil {
			return err
		}
		g.logf("nat: turned on %s (it was %s)", k, nss.Saved[k])
	}
	g.logf("nat: %s: forwarding what comes in from it to any interface but a tunnel, and the replies; masquerading %v out of any interface but a tunnel", g.id.Dev, g.clients)
	warnForwardDrop(g.ns, g.logf)
	return settleErr
}

// release removes the session's rules and its claim on the sysctls, and
// whatever sessions whose processes are gone left, under the state lock.
func (g *Gateway) release() error {
	var errs []error
	var gs map[int]bool // nil: the guards stay as they are
	st, err := loadState(g.dir)
	if err != nil {
		errs = append(errs, err)
	} else {
		gs = map[int]bool{}
		if nss := st.Namespaces[g.nsKey]; nss != nil {
			nss.remove(g.id)
			g.prune(nss)
			errs = append(errs, settle(nss, g.logf))
			gs = guardedFamilies(nss)
			if len(nss.Sessions) == 0 && len(nss.Saved) == 0 {
				delete(st.Namespaces, g.nsKey)
			}
			errs = append(errs, st.save(g.dir))
		}
	}
	errs = append(errs, syncRules(g.ns, g.id, nil, gs, g.logf))
	return errors.Join(errs...)
}

// prune drops the sessions whose processes are gone.
func (g *Gateway) prune(nss *nsState) {
	nss.Sessions = slices.DeleteFunc(nss.Sessions, func(s sessionState) bool {
		if s.alive() {
			return false
		}
		g.logf("nat: session %s is gone; dropping its claim on forwarding", s.session)
		return true
	})
}

// normalize checks the client prefixes and masks them.
func normalize(in []netip.Prefix) ([]netip.Prefix, error) {
	if len(in) == 0 {
		return nil, errors.New("nat: no client address to masquerade")
	}
	var out []netip.Prefix
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("nat: %v is not a client prefix", p)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Addr().Zone() != "" {
			p = netip.PrefixFrom(p.Addr().WithZone(""), p.Bits())
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// families are the IP versions (4, 6) of ps.
func families(ps []netip.Prefix) []int {
	var out []int
	for _, p := range ps {
		f := 6
		if p.Addr().Is4() {
			f = 4
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
