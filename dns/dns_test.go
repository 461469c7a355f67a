package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fake is a directory of stand-ins for resolvectl and resolvconf that log
// their arguments (and standard input) to a file, and fail for a
// subcommand SUB if a file fail-SUB exists.
type fake struct {
	dir string
	log string
}

const script = `#!/bin/sh
log=%q
dir=%q
{
	printf '%%s' "${0##*/}"
	for a in "$@"; do printf ' %%s' "$a"; done
	printf '\n'
	if [ "${0##*/}" = resolvconf ] && [ "$1" = -a ]; then
		while IFS= read -r line; do printf '< %%s\n' "$line"; done
	fi
} >>"$log"
sub=$1
[ "$sub" = -a ] || [ "$sub" = -d ] && sub=${sub#-}
if [ -e "$dir/fail-$sub" ]; then
	echo "$sub: it went wrong" >&2
	exit 1
fi
exit 0
`

func newFake(t *testing.T, programs ...string) *fake {
	t.Helper()
	f := &fake{dir: t.TempDir()}
	f.log = filepath.Join(f.dir, "log")
	for _, p := range programs {
		if err := os.WriteFile(filepath.Join(f.dir, p), fmt.Appendf(nil, script, f.log, f.dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// fail makes the fake fail subcommand sub (for resolvconf: a or d).
func (f *fake) fail(t *testing.T, sub string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, "fail-"+sub), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// calls returns and forgets the logged calls.
func (f *fake) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f.log)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// system finds programs in the fake's directory only; resolved tells
// whether systemd-resolved's runtime directory exists.
func (f *fake) system(t *testing.T, resolved bool) system {
	run := filepath.Join(t.TempDir(), "resolve")
	if resolved {
		if err := os.Mkdir(run, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(conf, []byte("nameserver 127.0.0.53\n"), 0o644)
	return system{
		lookPath: func(file string) (string, error) {
			p := filepath.Join(f.dir, file)
			if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
				return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
			}
			return p, nil
		},
		resolvedDir: run,
		resolvConf:  conf,
		linkExists:  func(string) bool { return true },
		timeout:     10 * time.Second,
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestResolved(t *testing.T) {
	f := newFake(t, "resolvectl", "resolvconf")
	undo, err := f.system(t, true).apply("tun0", addrs("10.0.0.1", "fd00::1"), nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "apply", f.calls(t), []string{"resolvectl dns tun0 10.0.0.1 fd00::1", "resolvectl domain tun0 ~."})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "undo", f.calls(t), []string{"resolvectl revert tun0"})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "second undo", f.calls(t), nil)
}

// Without its runtime directory, systemd-resolved is in use if
// "resolvectl status" works.
func TestResolvedByStatus(t *testing.T) {
	f := newFake(t, "resolvectl")
	undo, err := f.system(t, false).apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "apply", f.calls(t), []string{"resolvectl status", "resolvectl dns tun0 10.0.0.1", "resolvectl domain tun0 ~."})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "undo", f.calls(t), []string{"resolvectl revert tun0"})
}

func TestResolvconf(t *testing.T) {
	f := newFake(t, "resolvconf")
	undo, err := f.system(t, true).apply("tun0", addrs("10.0.0.1", "fd00::1"), nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "apply", f.calls(t), []string{"resolvconf -a tun0.sshvpn", "< nameserver 10.0.0.1", "< nameserver fd00::1"})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "undo", f.calls(t), []string{"resolvconf -d tun0.sshvpn"})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "second undo", f.calls(t), nil)
}

// resolvectl without a running systemd-resolved: resolvconf it is.
func TestResolvedNotRunning(t *testing.T) {
	f := newFake(t, "resolvectl", "resolvconf")
	f.fail(t, "status")
	undo, err := f.system(t, false).apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "apply", f.calls(t), []string{"resolvectl status", "resolvconf -a tun0.sshvpn", "< nameserver 10.0.0.1"})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "undo", f.calls(t), []string{"resolvconf -d tun0.sshvpn"})
}

func TestNeither(t *testing.T) {
	f := newFake(t)
	_, err := f.system(t, true).apply("tun0", addrs("10.0.0.1", "10.0.0.2"), nil, t.Logf)
	want := "dns: neither systemd-resolved nor resolvconf is available to set the DNS server; install one of them, or set nameserver 10.0.0.1 in /etc/resolv.conf yourself"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	same(t, "calls", f.calls(t), nil)
}

func TestFailures(t *testing.T) {
	t.Run("resolvectl dns", func(t *testing.T) {
		f := newFake(t, "resolvectl")
		f.fail(t, "dns")
		_, err := f.system(t, true).apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
		if want := "dns: resolvectl dns tun0 10.0.0.1: exit status 1: dns: it went wrong"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
		same(t, "calls", f.calls(t), []string{"resolvectl dns tun0 10.0.0.1"})
	})
	t.Run("resolvectl domain", func(t *testing.T) {
		f := newFake(t, "resolvectl")
		f.fail(t, "domain")
		_, err := f.system(t, true).apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
		if want := "dns: resolvectl domain tun0 ~.: exit status 1: domain: it went wrong"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
		// What was set is taken back.
		same(t, "calls", f.calls(t), []string{"resolvectl dns tun0 10.0.0.1", "resolvectl domain tun0 ~.", "resolvectl revert tun0"})
	})
	t.Run("resolvectl revert", func(t *testing.T) {
		f := newFake(t, "resolvectl")
		s := f.system(t, true)
		undo, err := s.apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		f.fail(t, "revert")
		if err := undo(); err == nil || !strings.HasPrefix(err.Error(), "dns: resolvectl revert tun0: ") {
			t.Errorf("undo = %v, want the failure", err)
		}
	})
	t.Run("resolvectl revert after the device went", func(t *testing.T) {
		f := newFake(t, "resolvectl")
		s := f.system(t, true)
		s.linkExists = func(string) bool { return false }
		undo, err := s.apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		f.fail(t, "revert")
		if err := undo(); err != nil {
			t.Errorf("undo = %v; systemd-resolved forgot the device with it", err)
		}
	})
	t.Run("resolvconf -a", func(t *testing.T) {
		f := newFake(t, "resolvconf")
		f.fail(t, "a")
		_, err := f.system(t, false).apply("tun0", addrs("10.0.0.1"), nil, t.Logf)
		if want := "dns: resolvconf -a tun0.sshvpn: exit status 1: a: it went wrong"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
	})
}

func TestBadArguments(t *testing.T) {
	f := newFake(t, "resolvectl", "resolvconf")
	s := f.system(t, true)
	for _, c := range []struct {
		dev     string
		servers []netip.Addr
	}{
		{"", addrs("10.0.0.1")},
		{"-x", addrs("10.0.0.1")},
		{"a-name-far-too-long", addrs("10.0.0.1")},
		{"tun0", nil},
		{"tun0", []netip.Addr{{}}},
		{"tun0", addrs("0.0.0.0")},
	} {
		if _, err := s.apply(c.dev, c.servers, nil, t.Logf); err == nil || !strings.HasPrefix(err.Error(), "dns: ") {
			t.Errorf("apply(%q, %v) = %v, want a dns error", c.dev, c.servers, err)
		}
	}
	same(t, "calls", f.calls(t), nil)
}

func TestWarnResolvConf(t *testing.T) {
	f := newFake(t, "resolvectl")
	s := f.system(t, true)
	var logged []string
	logf := func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }

	if _, err := s.apply("tun0", addrs("10.0.0.1"), nil, logf); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(logged, func(l string) bool { return strings.Contains(l, "warning") }) {
		t.Errorf("warned with the stub resolver in resolv.conf: %q", logged)
	}

	logged = nil
	os.WriteFile(s.resolvConf, []byte("nameserver 192.0.2.53\n"), 0o644)
	if _, err := s.apply("tun0", addrs("10.0.0.1"), nil, logf); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(logged, func(l string) bool { return strings.Contains(l, "does not point at systemd-resolved") }) {
		t.Errorf("no warning with another nameserver in resolv.conf: %q", logged)
	}
}

// TestResolvedDomains: with domains, only their names go to the tunnel's
// servers: the device gets them instead of "~.", and is no default route.
func TestResolvedDomains(t *testing.T) {
	f := newFake(t, "resolvectl", "resolvconf")
	undo, err := f.system(t, true).apply("tun0", addrs("10.0.0.1"), []string{"corp.example", "~lab.example"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "apply", f.calls(t), []string{"resolvectl dns tun0 10.0.0.1", "resolvectl domain tun0 corp.example ~lab.example", "resolvectl default-route tun0 false"})
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	same(t, "undo", f.calls(t), []string{"resolvectl revert tun0"})
}

// TestDomainsNeedResolved: resolvconf cannot split by domain, and says so;
// what is no domain name is refused before anything runs.
func TestDomainsNeedResolved(t *testing.T) {
	f := newFake(t, "resolvconf")
	if _, err := f.system(t, true).apply("tun0", addrs("10.0.0.1"), []string{"corp.example"}, t.Logf); err == nil || !strings.Contains(err.Error(), "needs systemd-resolved") {
		t.Errorf("domains with resolvconf: %v", err)
	}
	same(t, "nothing run", f.calls(t), nil)
	for _, bad := range []string{"", "~", "-x.example", "a..b", "bad_name.example", "x y", strings.Repeat("a", 64) + ".example"} {
		if CheckDomain(bad) == nil {
			t.Errorf("CheckDomain(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"corp.example", "~corp.example", "Corp.Example.", "a-1.b"} {
		if err := CheckDomain(good); err != nil {
			t.Errorf("CheckDomain(%q): %v", good, err)
		}
	}
}
