package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The fixed-address policy of the collision tests: what
// "authorized-key --addr ... --peer-addr ..." prints, with no --dev.
var fixedArgs = []string{"--addr", "198.18.77.2/30", "--peer-addr", "198.18.77.1/30"}

// tunsWith lists the server's devices that carry addr.
func (l *lab) tunsWith(addr string) []string {
	out, _ := l.in(l.Server, "ip", "-o", "addr", "show")
	var devs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.HasPrefix(f[3], addr+"/") {
			devs = append(devs, f[1])
		}
	}
	return devs
}

// TestFixedKeyCollision: a second session on a fixed-address key is
// refused, naming the session that has the address; with --replace it takes
// over, and the old session's client is told why.
func TestFixedKeyCollision(t *testing.T) {
	l := newLab(t, "LAB_CLIENTS=2")
	l.setKeys("root", fixedArgs...)
	first := l.up("--dev", "vpn0", "root@server")
	second := l.startIn(l.Client2(), "--dev", "vpn0", "root@server")
	err, log := second.wait(t, 30*time.Second)
	want := "remote: address 198.18.77.2/30 is in use by another sshvpn session on tun0; this key allows one session at a time, or use --pool"
	if err == nil || !strings.Contains(lastLine(log), want) {
		t.Errorf("second session: exit %v, last line %q; want %q", err, lastLine(log), want)
	}
	if n := strings.Count(log, "is in use by another sshvpn session"); n != 1 {
		t.Errorf("the refusal is shown %d times, want once:\n%s", n, log)
	}
	if devs := l.tunsWith("198.18.77.2"); len(devs) != 1 {
		t.Errorf("the server has 198.18.77.2 on %v, want one device", devs)
	}
	if err := l.ping(l.Client, "198.18.77.2"); err != nil {
		t.Errorf("the first session no longer works: %v", err)
	}
	if !l.syslogHas(5*time.Second, "session refused", "is in use by another sshvpn session") {
		t.Errorf("the refusal is not in the server's log:\n%s", l.Syslog)
	}

	// --replace: the newer session takes over; the older one's client is
	// told and exits.
	l.setKeys("root", append(fixedArgs, "--replace")...)
	l.upIn(l.Client2(), "--dev", "vpn0", "root@server")
	err, log = first.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "remote: this session was replaced by a newer session of the same key") {
		t.Errorf("replaced session: exit %v, last line %q", err, lastLine(log))
	}
	if err := l.ping(l.Client2(), "198.18.77.2"); err != nil {
		t.Errorf("the replacing session does not work: %v", err)
	}
	if devs := l.tunsWith("198.18.77.2"); len(devs) != 1 {
		t.Errorf("after the takeover the server has 198.18.77.2 on %v, want one device", devs)
	}
	if !l.syslogHas(5*time.Second, "replacing an older session of this key") {
		t.Errorf("the takeover is not in the server's log:\n%s", l.Syslog)
	}
}

// TestMaxSessions: a pool key limited to one session at a time refuses the
// second client.
func TestMaxSessions(t *testing.T) {
	l := newLab(t, "LAB_CLIENTS=2")
	l.setKeys("root", "--pool", "198.18.8.0/24", "--dev", "pool%d", "--max-sessions", "1", "--state-dir", filepath.Join(l.dir, "state"))
	l.up("--dev", "vpn0", "root@server")
	v := l.startIn(l.Client2(), "--dev", "vpn0", "root@server")
	err, log := v.wait(t, 30*time.Second)
	if want := "remote: this key allows 1 session at a time (the server's --max-sessions), and 1 is running"; err == nil || !strings.Contains(lastLine(log), want) {
		t.Errorf("second session of a one-session key: exit %v, last line %q; want %q", err, lastLine(log), want)
	}
}

// TestPolicyOverlaps: a policy or a proposal that would put the tunnel over
// networks already in use is refused, on either side, before anything is
// configured.
func TestPolicyOverlaps(t *testing.T) {
	l := newLab(t)
	// The server's own policy: routes the client may ask for overlap the pool.
	l.setKeys("root", "--pool", "198.18.8.0/24", "--dev", "pool%d")
	key := filepath.Join(l.dir, "id_ed25519.pub")
	out, err := exec.Command(l.Bin, "authorized-key", "--pool", "198.18.8.0/24", "--allow-route", "198.18.0.0/16", key).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--allow-route 198.18.0.0/16 overlaps --pool 198.18.8.0/24") {
		t.Errorf("authorized-key with --allow-route over --pool: %v\n%s", err, out)
	}
	// Written by hand, the same policy refuses every client, telling it why.
	os.WriteFile(filepath.Join(l.dir, "authorized_keys.root"), []byte(`command="`+l.Bin+` --remote --pool 198.18.8.0/24 --allow-route 198.18.0.0/16 --state-dir `+filepath.Join(l.dir, "state")+`" `+readFile(t, key)), 0o600)
	v := l.start("--remote-route", "198.18.8.3/32", "root@server")
	err, log := v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "remote: --allow-route 198.18.0.0/16 overlaps --pool 198.18.8.0/24") {
		t.Errorf("client of a contradictory policy: exit %v, last line %q", err, lastLine(log))
	}

	// A requested route over the server's LAN.
	l.setKeys("root", append(fixedArgs, "--allow-route", "198.51.0.0/16")...)
	v = l.start("--remote-route", "198.51.100.0/25", "root@server")
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "the requested route 198.51.100.0/25 overlaps 198.51.100.1/24") {
		t.Errorf("route over the server's LAN: exit %v, last line %q", err, lastLine(log))
	}

	// No policy: a proposal on the server's LAN is refused there ...
	os.WriteFile(filepath.Join(l.dir, "authorized_keys.root"), []byte(readFile(t, key)), 0o600)
	v = l.start("--addr", "198.51.100.9/24", "--peer-addr", "198.51.100.10/24", "root@server")
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "remote: the proposed tunnel address 198.51.100.10/24 overlaps 198.51.100.1/24") {
		t.Errorf("proposal on the server's LAN: exit %v, last line %q", err, lastLine(log))
	}
	if out := l.mustIn(l.Server, "ip", "-o", "link", "show", "type", "tun"); strings.Contains(out, ": ") {
		t.Errorf("a device was made on the server for a refused proposal:\n%s", out)
	}
	// ... and one on the client's own WAN at the client, before ssh.
	v = l.start("--addr", "192.0.2.9/24", "root@server")
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "the tunnel address 192.0.2.9/24 overlaps 192.0.2.1/24 on wan0") {
		t.Errorf("proposal on the client's WAN: exit %v, last line %q", err, lastLine(log))
	}

	// Both ends on one address, on either side.
	v = l.start("--addr", "198.18.0.1/30", "--peer-addr", "198.18.0.1/30", "root@server")
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "both ends of the tunnel would have the address 198.18.0.1") {
		t.Errorf("--addr equal to --peer-addr: exit %v, last line %q", err, lastLine(log))
	}
	out, err = exec.Command(l.Bin, "authorized-key", "--addr", "198.18.0.1/30", "--peer-addr", "198.18.0.1/30", key).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "both ends of the tunnel would have the address 198.18.0.1") {
		t.Errorf("authorized-key with --addr equal to --peer-addr: %v\n%s", err, out)
	}

	// An MTU too small for the tunnel's IPv6 addresses, said before ssh.
	v = l.start("--mtu", "1000", "root@server")
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "--mtu: MTU 1000 is below the 1280 IPv6 needs") {
		t.Errorf("--mtu 1000 with IPv6: exit %v, last line %q", err, lastLine(log))
	}

	// Device names the kernel would truncate.
	v = l.start("--dev", "sixteen-bytes-16", "root@server")
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "Linux allows at most 15") {
		t.Errorf("--dev of 16 bytes: exit %v, last line %q", err, lastLine(log))
	}
	out, err = exec.Command(l.Bin, "authorized-key", "--pool", "198.18.8.0/24", "--dev", "vpn-pool-devs%d", key).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "at most 15") {
		t.Errorf("authorized-key with a --dev pattern of over 15 bytes: %v\n%s", err, out)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRouteCoversServer: a --route that covers the SSH server's own address
// does not swallow the SSH connection: the server's route is pinned outside
// the tunnel, the tunnel works and stays up, and all is removed on exit.
func TestRouteCoversServer(t *testing.T) {
	l := newLab(t)
	before := l.mustIn(l.Client, "ip", "route", "show")
	v := l.up(append(tunnelArgs, "--route", "192.0.2.0/25", "root@server")...)
	if out := l.mustIn(l.Client, "ip", "route", "show", "192.0.2.2"); !strings.Contains(out, "192.0.2.2 dev wan0") {
		t.Errorf("the server's route is not pinned outside the tunnel:\n%s", out)
	}
	// Were the SSH connection captured, its next packet would go into
	// the tunnel it carries: the kernel's choice for it, and data
	// crossing the tunnel (so the connection), show that it is not.
	if out := l.mustIn(l.Client, "ip", "route", "get", "192.0.2.2"); !strings.Contains(out, "dev wan0") {
		t.Errorf("the SSH server is reached through %q, not wan0", out)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Errorf("the tunnel is down: %v", err)
	}
	l.transferBothWays(serverV4, 1<<20)
	if err, log := v.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
	if after := l.mustIn(l.Client, "ip", "route", "show"); after != before {
		t.Errorf("routes not restored:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestStaleRoutes: after kill -9, a --default-route client leaves its pinned
// server route behind; the next session recognises it as sshvpn's and
// removes it, and SIGQUIT cleans up like SIGTERM.
func TestStaleRoutes(t *testing.T) {
	l := newLab(t)
	before := l.mustIn(l.Client, "ip", "route", "show")
	v := l.up(append(tunnelArgs, "--default-route", "root@server")...)
	if out := l.mustIn(l.Client, "ip", "route", "show", "proto", "115"); !strings.Contains(out, "192.0.2.2 dev wan0") {
		t.Fatalf("the pinned route is not marked as sshvpn's:\n%s", out)
	}
	v.cmd.Process.Kill()
	v.wait(t, 10*time.Second)
	if out := l.mustIn(l.Client, "ip", "route", "show", "192.0.2.2"); !strings.Contains(out, "192.0.2.2 dev wan0") {
		t.Fatalf("no stale pinned route after kill -9 (the test needs one):\n%s", out)
	}
	// The killed client's ssh and server side go away (the server's
	// sshvpn on the client's EOF), freeing the tunnel's addresses.
	if !eventually(15*time.Second, func() bool {
		return len(l.pidsOf(l.Server, "sshvpn")) == 0 && len(l.pidsOf(l.Client, "ssh")) == 0
	}) {
		t.Fatalf("the killed session's ssh or server side is still there")
	}

	v = l.up(append(tunnelArgs, "--default-route", "root@server")...)
	if !strings.Contains(v.log.String(), "removed a route that an earlier sshvpn session left behind") {
		t.Errorf("the stale route was not reported:\n%s", v.log)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	v.cmd.Process.Signal(syscall.SIGQUIT)
	if err, log := v.wait(t, 15*time.Second); err != nil {
		t.Errorf("SIGQUIT: exit %v:\n%s", err, log)
	}
	if after := l.mustIn(l.Client, "ip", "route", "show"); after != before {
		t.Errorf("routes not restored after SIGQUIT:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestHostileStrings: control characters from the client (here in the
// reason it gives for giving up: its up hook's stderr) never reach the
// server's log raw.
func TestHostileStrings(t *testing.T) {
	l := newLab(t)
	l.setKeys("root", fixedArgs...)
	hook := filepath.Join(l.dir, "evil.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\nprintf 'evil \\033[31m\\033]0;owned\\007 hook\\n' >&2\nexit 3\n"), 0o755)
	v := l.start("--up", hook, "root@server")
	err, log := v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "exit status 3") {
		t.Errorf("exit %v, last line %q; want the hook's failure", err, lastLine(log))
	}
	if !l.syslogHas(5*time.Second, "session ended by the client", "evil") {
		t.Errorf("the client's reason is not in the server's log:\n%s", l.Syslog)
	}
	if strings.ContainsAny(l.Syslog.String(), "\x1b\x07") {
		t.Errorf("a raw control character reached the server's log: %q", l.Syslog)
	}
}
