package e2e

import (
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reconnectArgs: a client that reconnects, and notices a dead peer fast.
var reconnectArgs = append(append([]string(nil), tunnelArgs...), "--reconnect", "--keepalive", "1s", "--dead-after", "3s")

// ifindex is the interface index of dev in ns.
func (l *lab) ifindex(ns, dev string) int {
	l.t.Helper()
	out := l.mustIn(ns, "cat", "/sys/class/net/"+dev+"/ifindex")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		l.t.Fatalf("ifindex of %s: %q", dev, out)
	}
	return n
}

// upCount counts the "tunnel up" lines of the client's own side.
func upCount(v *vpn) int {
	n := 0
	for _, line := range strings.Split(v.log.String(), "\n") {
		if strings.Contains(line, `msg="tunnel up"`) && !strings.Contains(line, "side=remote") {
			n++
		}
	}
	return n
}

// waitUps waits until the client has come up n times.
func (l *lab) waitUps(v *vpn, n int, d time.Duration) {
	l.t.Helper()
	if !eventually(d, func() bool { return upCount(v) >= n }) {
		l.t.Fatalf("the tunnel did not come up %d times within %v:\n%s", n, d, v.log)
	}
}

// tcpPair connects a TCP connection from the client namespace to addr in
// the server namespace.
func (l *lab) tcpPair(addr string) (client, server net.Conn) {
	l.t.Helper()
	return l.tcpPairIn(l.Server, addr)
}

// tcpPairIn connects a TCP connection from the client namespace to addr in
// namespace ns.
func (l *lab) tcpPairIn(ns, addr string) (client, server net.Conn) {
	l.t.Helper()
	var ln net.Listener
	inNetns(l.t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			l.t.Errorf("listen: %v", err)
		}
	})
	if ln == nil {
		l.t.FailNow()
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	inNetns(l.t, l.Client, func() {
		var err error
		if client, err = net.DialTimeout("tcp", addr, 10*time.Second); err != nil {
			l.t.Errorf("dial: %v", err)
		}
	})
	if client == nil {
		l.t.FailNow()
	}
	server = <-accepted
	if server == nil {
		client.Close()
		l.t.Fatalf("accept in %s failed", ns)
	}
	l.t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// slowWriter lets through at most rate bytes a second, so that a transfer
// lasts long enough to have its connection cut in the middle.
type slowWriter struct {
	w     io.Writer
	rate  int
	start time.Time
	n     int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	if ahead := time.Duration(s.n)*time.Second/time.Duration(s.rate) - time.Since(s.start); ahead > 0 {
		time.Sleep(ahead)
	}
	n, err := s.w.Write(p)
	s.n += n
	return n, err
}

// TestReconnectKeepsTCP: kill -9 the ssh under a client with --reconnect in
// the middle of a TCP transfer: the tunnel comes back within seconds on the
// same device, and the TCP connection completes with the right checksum.
func TestReconnectKeepsTCP(t *testing.T) {
	l := newLab(t)
	v := l.up(append(reconnectArgs, "--dev", "vpn0", "root@server")...)
	before := l.ifindex(l.Client, "vpn0")
	conn, srv := l.tcpPair(net.JoinHostPort(serverV4, "5001"))
	ssh := childPID(t, v.cmd.Process.Pid, "ssh")
	go func() {
		time.Sleep(time.Second) // into the transfer
		syscall.Kill(ssh, syscall.SIGKILL)
	}()
	start := time.Now()
	const size = 12 << 20
	sent, got := transfer(t, &slowConn{Conn: conn, w: &slowWriter{w: conn, rate: 4 << 20}}, srv, size, 7)
	t.Logf("%d MB in %v across a reconnect", size>>20, time.Since(start))
	if sent != got {
		t.Errorf("checksum mismatch across the reconnect: sent %x, received %x", sent, got)
	}
	if upCount(v) < 2 || !strings.Contains(v.log.String(), "reconnecting") {
		t.Errorf("no reconnect in the client's log:\n%s", v.log)
	}
	if after := l.ifindex(l.Client, "vpn0"); after != before {
		t.Errorf("the device changed across the reconnect: ifindex %d, then %d", before, after)
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
}

// slowConn is a net.Conn whose writes go through w.
type slowConn struct {
	net.Conn
	w io.Writer
}

func (c *slowConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// TestReconnectDeadLink: a link down for longer than --dead-after is noticed
// by both sides; when it is back, the client reconnects by itself and the
// server's old session process is gone.
func TestReconnectDeadLink(t *testing.T) {
	l := newLab(t)
	v := l.up(append(reconnectArgs, "--remote-cmd", "sshvpn --remote --keepalive 1s --dead-after 3s", "root@server")...)
	old := l.pidsOf(l.Server, "sshvpn")
	if len(old) != 1 {
		t.Fatalf("remote sshvpn processes: %v", old)
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "down")
	if !eventually(10*time.Second, func() bool { return strings.Contains(v.log.String(), "no sign of life from the peer") }) {
		t.Errorf("the client did not notice the dead link:\n%s", v.log)
	}
	if !l.syslogHas(10*time.Second, "no sign of life from the peer") {
		t.Errorf("the server did not notice the dead link:\n%s", l.Syslog)
	}
	if !eventually(10*time.Second, func() bool { return !processAlive(old[0]) }) {
		t.Errorf("the server's old session (pid %d) is still there", old[0])
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "up")
	l.waitUps(v, 2, 40*time.Second)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestReconnectServerRestart: the server's sshd restarts (and its sessions
// end, as in a server's restart): the client reconnects.
func TestReconnectServerRestart(t *testing.T) {
	l := newLab(t)
	v := l.up(append(reconnectArgs, "root@server")...)
	l.restartSSHD()
	l.waitUps(v, 2, 30*time.Second)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
}

// TestKillSwitch: with --default-route --reconnect and the server out of
// reach, traffic to an outside address never leaves by the client's
// physical interface; after the reconnect it flows through the tunnel.
func TestKillSwitch(t *testing.T) {
	requireTool(t, "nft", "nftables")
	l := newLab(t)
	lanHost := l.env["LAB_LAN_HOST"]
	// Without the tunnel, the LAN host would be reached in the clear, by
	// the client's uplink.
	l.mustIn(l.Client, "ip", "route", "add", "default", "via", "192.0.2.2")
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.mustIn(l.Client, "nft", "add table inet leak; add chain inet leak out { type filter hook output priority 0; }; "+
		"add rule inet leak out oifname wan0 ip daddr "+lanHost+" counter")
	leaked := func() string {
		out := l.mustIn(l.Client, "nft", "list", "chain", "inet", "leak", "out")
		i := strings.Index(out, "counter packets ")
		if i < 0 {
			t.Fatalf("no counter:\n%s", out)
		}
		return strings.Fields(out[i+len("counter packets "):])[0]
	}
	// The counter counts what leaves by the uplink: without the tunnel,
	// a ping does.
	if err := l.ping(l.Client, lanHost, "-c", "1"); err != nil {
		t.Fatalf("without the tunnel: %v", err)
	}
	base := leaked()
	if base == "0" {
		t.Fatalf("the leak counter did not count a ping that left by wan0")
	}
	v := l.up(append(reconnectArgs, "--default-route", "root@server")...)
	if err := l.ping(l.Client, lanHost); err != nil {
		t.Fatalf("through the tunnel: %v", err)
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "down")
	if !eventually(10*time.Second, func() bool { return strings.Contains(v.log.String(), "reconnecting") }) {
		t.Fatalf("the client did not notice the dead link:\n%s", v.log)
	}
	if err := l.ping(l.Client, lanHost); err == nil {
		t.Error("the LAN host answered while the tunnel was down")
	}
	if n := leaked(); n != base {
		t.Errorf("%s packets to %s left by the uplink while the tunnel was down (%s before it)", n, lanHost, base)
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "up")
	l.waitUps(v, 2, 40*time.Second)
	if err := l.ping(l.Client, lanHost, "-c", "5"); err != nil {
		t.Errorf("after the reconnect: %v", err)
	}
	if n := leaked(); n != base {
		t.Errorf("%s packets to %s left by the uplink (%s before the tunnel)", n, lanHost, base)
	}
}

// TestReconnectPool: a pool client that reconnects gets its addresses back,
// although a lower lease is free by then.
func TestReconnectPool(t *testing.T) {
	l := newLab(t, "LAB_CLIENTS=2")
	l.setKeys("root", "--pool", "198.18.8.0/24", "--dev", "pool%d", "--state-dir", l.dir+"/state")
	first := l.upIn(l.Client2(), "--dev", "vpn0", "root@server") // takes the lowest lease
	v := l.up(append(reconnectArgs, "--dev", "vpn0", "root@server")...)
	addr := tunAddr(t, l, l.Client, "-4")
	if err, log := first.stop(t); err != nil { // the lowest lease is free now
		t.Fatalf("exit %v:\n%s", err, log)
	}
	syscall.Kill(childPID(t, v.cmd.Process.Pid, "ssh"), syscall.SIGKILL)
	l.waitUps(v, 2, 30*time.Second)
	if got := tunAddr(t, l, l.Client, "-4"); got != addr {
		t.Errorf("the reconnected client has %s, want its lease %s back", got, addr)
	}
}

// TestReconnectTakeover: a fixed-address key whose server has not yet seen
// the old session die: the reconnect takes over from it (the same client),
// while another client of the same key is still refused.
func TestReconnectTakeover(t *testing.T) {
	l := newLab(t, "LAB_CLIENTS=2")
	l.setKeys("root", fixedArgs...)
	requireTool(t, "nft", "nftables")
	v := l.up(append(reconnectArgs, "--dev", "vpn0", "root@server")...)
	old := l.pidsOf(l.Server, "sshvpn")
	// The old connection goes dead one way, as on a flaky link: the
	// server hears nothing more of it (not even its end), so it keeps the
	// old session (--dead-after 45s); the client notices in 3 s.
	out := l.mustIn(l.Client, "ss", "-tnH", "state", "established", "( dport = :22 )")
	f := strings.Fields(out)
	if len(f) < 3 {
		t.Fatalf("no SSH connection in the client namespace:\n%s", out)
	}
	_, port, _ := net.SplitHostPort(f[len(f)-2])
	l.mustIn(l.Server, "nft", "add table inet cut; add chain inet cut in { type filter hook input priority 0; }; "+
		"add rule inet cut in tcp sport "+port+" drop")
	if !eventually(15*time.Second, func() bool { return strings.Contains(v.log.String(), "reconnecting") }) {
		t.Fatalf("the client did not notice the dead connection:\n%s", v.log)
	}
	l.waitUps(v, 2, 40*time.Second)
	if !l.syslogHas(5*time.Second, "the client reconnected; taking over from its older session") {
		t.Errorf("no takeover in the server's log:\n%s", l.Syslog)
	}
	for _, pid := range old {
		if processAlive(pid) {
			t.Errorf("the old session (pid %d) is still there", pid)
		}
	}
	if err := l.ping(l.Client, "198.18.77.2"); err != nil {
		t.Error(err)
	}
	other := l.startIn(l.Client2(), "--dev", "vpn0", "root@server")
	err, log := other.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "is in use by another sshvpn session") {
		t.Errorf("another client of the key: exit %v, last line %q", err, lastLine(log))
	}
}

// TestReconnectSignals: SIGHUP reconnects at once; SIGTERM while waiting to
// reconnect exits 0 with everything removed.
func TestReconnectSignals(t *testing.T) {
	l := newLab(t)
	before := l.mustIn(l.Client, "ip", "route", "show")
	v := l.up(append(reconnectArgs, "--dev", "vpn0", "--route", "198.51.100.0/24", "root@server")...)
	v.cmd.Process.Signal(syscall.SIGHUP)
	l.waitUps(v, 2, 20*time.Second)
	if !strings.Contains(v.log.String(), "reason=hangup") {
		t.Errorf("the reconnect does not say it was a hangup:\n%s", v.log)
	}
	// Out of reach: the client waits between attempts.
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "down")
	if !eventually(10*time.Second, func() bool { return strings.Contains(v.log.String(), "no sign of life") }) {
		t.Fatalf("the client did not notice the dead link:\n%s", v.log)
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("SIGTERM while reconnecting: exit %v:\n%s", err, log)
	}
	if out, _ := l.in(l.Client, "ip", "-o", "link", "show", "type", "tun"); strings.Contains(out, ": ") {
		t.Errorf("device left after SIGTERM:\n%s", out)
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "up")
	if !eventually(5*time.Second, func() bool { return l.mustIn(l.Client, "ip", "route", "show") == before }) {
		t.Errorf("routes not restored:\nbefore:\n%s\nafter:\n%s", before, l.mustIn(l.Client, "ip", "route", "show"))
	}
}
