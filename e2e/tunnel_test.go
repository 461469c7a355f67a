package e2e

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The addresses of the acceptance command.
const (
	clientV4 = "198.18.0.1"
	serverV4 = "198.18.0.2"
	clientV6 = "2001:2::1"
	serverV6 = "2001:2::2"
)

var tunnelArgs = []string{
	"--addr", clientV4 + "/30", "--peer-addr", serverV4 + "/30",
	"--addr", clientV6 + "/126", "--peer-addr", serverV6 + "/126",
}

func TestPingBothWays(t *testing.T) {
	l := newLab(t)
	l.up(append(tunnelArgs, "root@server")...)
	for _, c := range []struct{ ns, addr string }{
		{l.Client, serverV4}, {l.Server, clientV4}, {l.Client, serverV6}, {l.Server, clientV6},
	} {
		if err := l.ping(c.ns, c.addr); err != nil {
			t.Error(err)
		}
	}
}

// TestDefaultAddresses: "sshvpn user@host" alone gives a usable link.
func TestDefaultAddresses(t *testing.T) {
	l := newLab(t)
	l.up("root@server")
	for _, addr := range []string{"198.18.0.2", "fd73:7368:7670::2"} {
		if err := l.ping(l.Client, addr); err != nil {
			t.Error(err)
		}
	}
}

// TestMTUSizedPackets sends pings that fill the MTU exactly, with fragmentation
// forbidden, and checks that one byte more is refused locally: the MTU the
// handshake agreed is the one on both devices.
func TestMTUSizedPackets(t *testing.T) {
	l := newLab(t)
	const mtu = 1400
	l.up(append(tunnelArgs, "--mtu", strconv.Itoa(mtu), "--dev", "vpn0", "root@server")...)
	for _, ns := range []string{l.Client, l.Server} {
		out := l.mustIn(ns, "ip", "-o", "link", "show")
		if !strings.Contains(out, "mtu "+strconv.Itoa(mtu)) {
			t.Errorf("no device with mtu %d in %s:\n%s", mtu, ns, out)
		}
	}
	cases := []struct {
		ns, addr string
		hdr      int
	}{
		{l.Client, serverV4, 28}, {l.Server, clientV4, 28}, {l.Client, serverV6, 48}, {l.Server, clientV6, 48},
	}
	for _, c := range cases {
		if err := l.ping(c.ns, c.addr, "-M", "do", "-s", strconv.Itoa(mtu-c.hdr)); err != nil {
			t.Errorf("MTU-sized packet: %v", err)
		}
		if err := l.ping(c.ns, c.addr, "-M", "do", "-s", strconv.Itoa(mtu-c.hdr+1)); err == nil {
			t.Errorf("ping of MTU+1 bytes to %s from %s passed; the MTU is not %d", c.addr, c.ns, mtu)
		}
	}
}

// TestTCPTransfer moves 50 MB each way over IPv4 and IPv6 and compares SHA-256
// sums of what was sent and what arrived.
func TestTCPTransfer(t *testing.T) {
	l := newLab(t)
	l.up(append(tunnelArgs, "root@server")...)
	const size = 50 << 20
	for _, c := range []struct{ name, server string }{{"ipv4", serverV4}, {"ipv6", serverV6}} {
		t.Run(c.name, func(t *testing.T) {
			addr := net.JoinHostPort(c.server, "5001")
			var ln net.Listener
			inNetns(t, l.Server, func() {
				var err error
				if ln, err = net.Listen("tcp", addr); err != nil {
					t.Fatalf("listen in server namespace: %v", err)
				}
			})
			if ln == nil {
				return
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					t.Errorf("accept: %v", err)
					close(accepted)
					return
				}
				accepted <- c
			}()
			var conn net.Conn
			inNetns(t, l.Client, func() {
				var err error
				if conn, err = net.DialTimeout("tcp", addr, 10*time.Second); err != nil {
					t.Errorf("dial from client namespace: %v", err)
				}
			})
			if conn == nil {
				return
			}
			defer conn.Close()
			srv, ok := <-accepted
			if !ok {
				return
			}
			defer srv.Close()

			start := time.Now()
			sentUp, gotUp := transfer(t, conn, srv, size, 1)
			t.Logf("%s client->server: %d MB in %v", c.name, size>>20, time.Since(start))
			start = time.Now()
			sentDown, gotDown := transfer(t, srv, conn, size, 2)
			t.Logf("%s server->client: %d MB in %v", c.name, size>>20, time.Since(start))
			if sentUp != gotUp {
				t.Errorf("client->server checksum mismatch: sent %x, received %x", sentUp, gotUp)
			}
			if sentDown != gotDown {
				t.Errorf("server->client checksum mismatch: sent %x, received %x", sentDown, gotDown)
			}
		})
	}
}

// transfer writes n pseudo-random bytes to w and reads them from r,
// returning the SHA-256 of each side.
func transfer(t *testing.T, w, r net.Conn, n int64, seed uint64) (sent, got [32]byte) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	w.SetDeadline(deadline)
	r.SetDeadline(deadline)
	errc := make(chan error, 1)
	go func() {
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n), h)
		_, err := io.Copy(w, src)
		copy(sent[:], h.Sum(nil))
		errc <- err
	}()
	h := sha256.New()
	m, err := io.CopyN(h, r, n)
	if err != nil {
		t.Errorf("received %d of %d bytes: %v", m, n, err)
	}
	if err := <-errc; err != nil {
		t.Errorf("sending: %v", err)
	}
	copy(got[:], h.Sum(nil))
	return sent, got
}

// TestShutdownLeavesNothing: SIGTERM to the client ends both sides cleanly,
// with no device, address or process left behind.
func TestShutdownLeavesNothing(t *testing.T) {
	l := newLab(t)
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "root@server")...)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Fatal(err)
	}
	err, log := v.stop(t)
	if err != nil {
		t.Fatalf("client exited with %v after SIGTERM:\n%s", err, log)
	}
	for _, ns := range []string{l.Client, l.Server} {
		ok := eventually(5*time.Second, func() bool {
			out, _ := l.in(ns, "ip", "-o", "link", "show", "type", "tun")
			out2, _ := l.in(ns, "ip", "-o", "addr", "show")
			return !strings.Contains(out, ": ") && !strings.Contains(out2, "198.18.0.") && !strings.Contains(out2, "2001:2::")
		})
		if !ok {
			out, _ := l.in(ns, "ip", "addr")
			t.Errorf("device or address left in %s:\n%s", ns, out)
		}
	}
	if !eventually(5*time.Second, func() bool { return !processesOf(l.Bin) }) {
		out, _ := exec.Command("pgrep", "-af", l.Bin).Output()
		t.Errorf("sshvpn processes left behind:\n%s", out)
	}
	if !strings.Contains(log, "peer closed the tunnel") {
		t.Errorf("the remote did not log the client's goodbye:\n%s", log)
	}
}

// processesOf reports whether a live (not zombie) process runs path.
func processesOf(path string) bool {
	out, _ := exec.Command("pgrep", "-f", path).Output()
	for _, pid := range strings.Fields(string(out)) {
		stat, err := exec.Command("ps", "-o", "stat=", "-p", pid).Output()
		if err == nil && !strings.HasPrefix(strings.TrimSpace(string(stat)), "Z") {
			return true
		}
	}
	return false
}

// TestRemoteDies: when the remote sshvpn is killed, the client exits non-zero
// and says the connection was lost.
func TestRemoteDies(t *testing.T) {
	l := newLab(t)
	v := l.up(append(tunnelArgs, "root@server")...)
	pids := l.pidsOf(l.Server, "sshvpn")
	if len(pids) != 1 {
		t.Fatalf("want one sshvpn in the server namespace, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err, log := v.wait(t, 30*time.Second)
	if err == nil {
		t.Fatalf("client exited 0 after the remote died:\n%s", log)
	}
	last := lastLine(log)
	if !strings.Contains(last, "sshvpn:") || !(strings.Contains(last, "connection") || strings.Contains(last, "exit")) {
		t.Errorf("last line does not say what happened: %q", last)
	}
	// ssh printed nothing here: the line says so instead of pointing to a
	// message that is not there.
	if !strings.Contains(last, "255 and no message") {
		t.Errorf("last line does not say that ssh gave no message:\n%s", log)
	}
	if out, _ := l.in(l.Client, "ip", "-o", "link", "show", "type", "tun"); strings.Contains(out, ": ") {
		t.Errorf("tun device left in the client namespace:\n%s", out)
	}
}

// TestRemoteNotInstalled: a server without sshvpn gives the "not found" advice.
func TestRemoteNotInstalled(t *testing.T) {
	l := newLab(t)
	v := l.start("--remote-cmd", "/opt/no-such-dir/sshvpn --remote", "root@server")
	err, log := v.wait(t, 30*time.Second)
	if err == nil {
		t.Fatalf("client exited 0:\n%s", log)
	}
	last := lastLine(log)
	for _, want := range []string{"127", "install sshvpn", "--remote-cmd"} {
		if !strings.Contains(last, want) {
			t.Errorf("error %q lacks %q", last, want)
		}
	}
}

// TestBanner: output before the handshake is reported, quoted.
func TestBanner(t *testing.T) {
	l := newLab(t)
	v := l.start("--remote-cmd", "echo Welcome to the lab server; sshvpn --remote", "root@server")
	err, log := v.wait(t, 30*time.Second)
	if err == nil {
		t.Fatalf("client exited 0:\n%s", log)
	}
	last := lastLine(log)
	if !strings.Contains(last, `"Welcome to the lab server\n`) || !strings.Contains(last, "banner") {
		t.Errorf("error does not quote the banner: %q", last)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestCtrlC: Ctrl-C in a terminal signals the whole job, sshvpn and its ssh
// at once; the client still exits 0 and leaves nothing behind. The SSH
// connection runs over IPv6 here.
func TestCtrlC(t *testing.T) {
	l := newLab(t)
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "root@server6")...)
	if err := l.ping(l.Client, serverV6); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-v.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err, log := v.wait(t, 15*time.Second); err != nil {
		t.Errorf("client exited with %v after Ctrl-C:\n%s", err, log)
	}
	for _, ns := range []string{l.Client, l.Server} {
		if !eventually(5*time.Second, func() bool {
			out, _ := l.in(ns, "ip", "-o", "link", "show", "type", "tun")
			return !strings.Contains(out, ": ")
		}) {
			out, _ := l.in(ns, "ip", "link")
			t.Errorf("tun device left in %s after Ctrl-C:\n%s", ns, out)
		}
	}
	if !eventually(5*time.Second, func() bool { return !processesOf(l.Bin) && len(l.pidsOf(l.Server, "sshvpn")) == 0 }) {
		t.Error("sshvpn processes left after Ctrl-C")
	}
}

// TestCtrlCWhileConnecting: Ctrl-C before the tunnel is up (here ssh
// waits on a ProxyCommand that never connects) exits with 130 and says
// so, rather than 0 in silence.
func TestCtrlCWhileConnecting(t *testing.T) {
	l := newLab(t)
	v := l.start(append(tunnelArgs, "-e", "ssh -F "+l.SSHConfig+" -o 'ProxyCommand=sleep 60'", "root@server")...)
	if !eventually(10*time.Second, func() bool { return len(children(t, v.cmd.Process.Pid, "ssh")) > 0 }) {
		t.Fatalf("no ssh child:\n%s", v.log)
	}
	if err := syscall.Kill(-v.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err, log := v.wait(t, 15*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(lastLine(log), "interrupted before the tunnel came up") {
		t.Errorf("Ctrl-C while connecting: exit %v, last line %q", err, lastLine(log))
	}
}

// TestSSHFailureOnce: when ssh cannot log in, its message reaches the
// user once, followed by advice, and without sshvpn's inner layers.
func TestSSHFailureOnce(t *testing.T) {
	l := newLab(t)
	v := l.start(append(tunnelArgs, "nosuchuser@server")...)
	err, log := v.wait(t, 30*time.Second)
	if err == nil {
		t.Fatalf("logging in as nobody the server knows succeeded:\n%s", log)
	}
	if n := strings.Count(log, "Permission denied"); n != 1 || !strings.Contains(log, "ssh-add -l") || !strings.Contains(log, "ssh -v nosuchuser@server") ||
		strings.Contains(log, "connection to the peer lost") {
		t.Errorf("ssh's refusal said %d times, or without advice:\n%s", n, log)
	}
}
