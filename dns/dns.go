// Package dns points the client's resolver at DNS servers reached through
// the tunnel, for `sshvpn --dns`, and undoes that when the session ends.
//
// Where systemd-resolved runs, the servers go on the tunnel device with
// "resolvectl dns DEV ADDR..." and the device gets the routing domain "~."
// ("resolvectl domain DEV ~."), so every query goes to them, as every
// packet goes through the tunnel; "resolvectl revert DEV" undoes both.
// With domains (--dns-domain), only names under them go to the tunnel's
// servers: the device gets those domains instead of "~." ("corp.example"
// to search and route, "~corp.example" to route only) and is no default
// route for queries ("resolvectl default-route DEV false"). resolvconf
// has no per-server domains: there domains are refused.
// Elsewhere, where a resolvconf program (Debian's resolvconf or
// openresolv) is installed, the servers are given to it as the record
// "DEV.sshvpn" ("resolvconf -a DEV.sshvpn", the nameserver lines on its
// standard input), and "resolvconf -d DEV.sshvpn" undoes it. The package
// never edits /etc/resolv.conf itself.
package dns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// system is what Apply finds its programs and their state through; tests
// replace it.
type system struct {
	lookPath    func(file string) (string, error)
	resolvedDir string // exists while systemd-resolved runs
	resolvConf  string // /etc/resolv.conf, read only for a warning
	linkExists  func(dev string) bool
	timeout     time.Duration // for each program run
}

var host = system{
	lookPath:    exec.LookPath,
	resolvedDir: "/run/systemd/resolve",
	resolvConf:  "/etc/resolv.conf",
	linkExists:  func(dev string) bool { _, err := net.InterfaceByName(dev); return err == nil },
	timeout:     15 * time.Second,
}

// recordSuffix ends the name of sshvpn's records for resolvconf.
const recordSuffix = ".sshvpn"

// Apply makes servers the DNS servers for everything while device dev is
// up, through systemd-resolved or resolvconf, whichever is there. undo
// takes them away; calling it again does nothing.
func Apply(dev string, servers []netip.Addr, domains []string, logf func(string, ...any)) (undo func() error, err error) {
	return host.apply(dev, servers, domains, logf)
}

// CheckDomain refuses what is no domain name for --dns-domain: labels of
// letters, digits and '-', with one leading '~' for a routing-only one.
func CheckDomain(d string) error {
	name := strings.TrimSuffix(strings.TrimPrefix(d, "~"), ".")
	ok := name != "" && len(name) <= 253
	for _, label := range strings.Split(name, ".") {
		ok = ok && label != "" && len(label) <= 63 && !strings.HasPrefix(label, "-") &&
			strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
	}
	if !ok {
		return fmt.Errorf("dns: %q is not a domain name (corp.example, or ~corp.example to route only)", d)
	}
	return nil
}

func (s system) apply(dev string, servers []netip.Addr, domains []string, logf func(string, ...any)) (func() error, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if dev == "" || len(dev) > 15 || strings.HasPrefix(dev, "-") || strings.ContainsAny(dev, "/ \t\n") {
		return nil, fmt.Errorf("dns: %q is not a device name", dev)
	}
	if len(servers) == 0 {
		return nil, errors.New("dns: no DNS server given")
	}
	addrs := make([]string, len(servers))
	for i, a := range servers {
		if !a.IsValid() || a.IsUnspecified() {
			return nil, fmt.Errorf("dns: %v is not a DNS server address", a)
		}
		addrs[i] = a.Unmap().String()
	}

	for _, d := range domains {
		if err := CheckDomain(d); err != nil {
			return nil, err
		}
	}
	if resolvectl, ok := s.resolved(); ok {
		if err := s.run(resolvectl, nil, append([]string{"dns", dev}, addrs...)...); err != nil {
			return nil, err
		}
		steps := [][]string{{"domain", dev, "~."}}
		if len(domains) > 0 {
			steps = [][]string{append([]string{"domain", dev}, domains...), {"default-route", dev, "false"}}
		}
		for _, step := range steps {
			if err := s.run(resolvectl, nil, step...); err != nil {
				if rerr := s.run(resolvectl, nil, "revert", dev); rerr != nil {
					logf("dns: undoing: %v", rerr)
				}
				return nil, err
			}
		}
		which := "every name"
		if len(domains) > 0 {
			which = "names under " + strings.Join(domains, ", ")
		}
		logf("dns: %s resolves %s through %s (systemd-resolved)", dev, which, strings.Join(addrs, ", "))
		s.warnResolvConf(logf)
		return once(func() error {
			err := s.run(resolvectl, nil, "revert", dev)
			if err != nil && !s.linkExists(dev) {
				// systemd-resolved forgets a device's settings when it goes.
				err = nil
			}
			if err == nil {
				logf("dns: %s no longer resolves through %s", dev, strings.Join(addrs, ", "))
			}
			return err
		}), nil
	}

	if resolvconf, err := s.lookPath("resolvconf"); err == nil {
		if len(domains) > 0 {
			return nil, fmt.Errorf("dns: --dns-domain needs systemd-resolved (per-device DNS domains); this machine has resolvconf, " +
				"which sends every name to every server: drop --dns-domain to resolve every name through the tunnel, or run systemd-resolved")
		}
		record := dev + recordSuffix
		var conf bytes.Buffer
		for _, a := range addrs {
			fmt.Fprintf(&conf, "nameserver %s\n", a)
		}
		if err := s.run(resolvconf, conf.Bytes(), "-a", record); err != nil {
			return nil, err
		}
		logf("dns: resolving through %s (resolvconf record %s)", strings.Join(addrs, ", "), record)
		return once(func() error {
			err := s.run(resolvconf, nil, "-d", record)
			if err == nil {
				logf("dns: removed resolvconf record %s", record)
			}
			return err
		}), nil
	}

	return nil, fmt.Errorf("dns: neither systemd-resolved nor resolvconf is available to set the DNS server; install one of them, or set nameserver %s in /etc/resolv.conf yourself", addrs[0])
}

// resolved finds resolvectl if systemd-resolved is in use: it runs, by
// its runtime directory or by "resolvectl status".
func (s system) resolved() (string, bool) {
	resolvectl, err := s.lookPath("resolvectl")
	if err != nil {
		return "", false
	}
	if fi, err := os.Stat(s.resolvedDir); err == nil && fi.IsDir() {
		return resolvectl, true
	}
	return resolvectl, s.run(resolvectl, nil, "status") == nil
}

// warnResolvConf warns when /etc/resolv.conf sends programs that read it
// elsewhere than systemd-resolved.
func (s system) warnResolvConf(logf func(string, ...any)) {
	if target, err := filepath.EvalSymlinks(s.resolvConf); err == nil && strings.HasPrefix(target, s.resolvedDir+"/") {
		return
	}
	b, err := os.ReadFile(s.resolvConf)
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" && (f[1] == "127.0.0.53" || f[1] == "127.0.0.54") {
			return
		}
	}
	logf("dns: warning: %s does not point at systemd-resolved (nameserver 127.0.0.53), so programs that read it may not use the tunnel's DNS servers", s.resolvConf)
}

// run runs program with args and stdin; the error tells the command and
// what it said.
func (s system) run(program string, stdin []byte, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("dns: %s %s: %v", filepath.Base(program), strings.Join(args, " "), err)
		if o := strings.TrimSpace(string(out)); o != "" {
			msg += ": " + o
		}
		return errors.New(msg)
	}
	return nil
}

// once makes undo run at most once, and report nil after.
func once(undo func() error) func() error {
	var (
		mu   sync.Mutex
		done bool
	)
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return nil
		}
		done = true
		return undo()
	}
}
