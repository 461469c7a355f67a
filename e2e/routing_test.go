package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// routes returns the IPv4 and IPv6 routing tables of namespace ns, all of
// them, less the link-local entries the kernel adds on its own schedule (the
// lab's veths finish address autoconfiguration at any time).
func (l *lab) routes(ns string) string {
	l.t.Helper()
	all := l.mustIn(ns, "ip", "-4", "route", "show", "table", "all") + l.mustIn(ns, "ip", "-6", "route", "show", "table", "all")
	var keep []string
	for _, line := range strings.Split(all, "\n") {
		if !strings.Contains(line, "fe80:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// udpSource sends datagrams from ns to host:port (in namespace hostNS) and
// returns the source address the receiver saw, or "" if nothing arrived.
func (l *lab) udpSource(ns, hostNS, host string) string {
	t := l.t
	t.Helper()
	var pc net.PacketConn
	inNetns(t, hostNS, func() {
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(host, "7002")); err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	if pc == nil {
		return ""
	}
	defer pc.Close()
	var conn net.Conn
	inNetns(t, ns, func() {
		var err error
		if conn, err = net.Dial("udp", net.JoinHostPort(host, "7002")); err != nil {
			t.Errorf("dial %s from %s: %v", host, ns, err)
		}
	})
	if conn == nil {
		return ""
	}
	defer conn.Close()
	for range 3 {
		conn.Write([]byte("probe"))
	}
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	_, from, err := pc.ReadFrom(buf)
	if err != nil {
		return ""
	}
	h, _, _ := net.SplitHostPort(from.String())
	return h
}

// TestRoute: --route on the client reaches the LAN behind the server over
// IPv4 and IPv6, --route on the server routes into the tunnel there, and
// both are gone after exit.
func TestRoute(t *testing.T) {
	l := newLab(t)
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	clientBefore, serverBefore := l.routes(l.Client), l.routes(l.Server)
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "--route", "198.51.100.0/24", "--route", "2001:db8:2::/64",
		"--remote-cmd", "sshvpn --remote --dev svpn0 --route 198.18.30.0/24 --route 2001:2:30::/64", "root@server")...)
	for _, host := range []string{l.env["LAB_LAN_HOST"], l.env["LAB_LAN_HOST6"]} {
		if err := l.ping(l.Client, host); err != nil {
			t.Error(err)
		}
	}
	if got := l.udpSource(l.Client, l.LAN, l.env["LAB_LAN_HOST"]); got != clientV4 {
		t.Errorf("the LAN host saw source %q, want the tunnel address %s", got, clientV4)
	}
	out := l.mustIn(l.Server, "ip", "route", "show", "dev", "svpn0")
	out += l.mustIn(l.Server, "ip", "-6", "route", "show", "dev", "svpn0")
	if !strings.Contains(out, "198.18.30.0/24") || !strings.Contains(out, "2001:2:30::/64") {
		t.Errorf("the server's --route is missing:\n%s", out)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	if !eventually(5*time.Second, func() bool { return l.routes(l.Client) == clientBefore && l.routes(l.Server) == serverBefore }) {
		t.Errorf("routing tables differ after exit:\nclient before:\n%s\nclient after:\n%s\nserver before:\n%s\nserver after:\n%s",
			clientBefore, l.routes(l.Client), serverBefore, l.routes(l.Server))
	}
}

// TestDefaultRoute: --default-route sends the client's traffic to the LAN
// through the tunnel while the SSH session itself stays outside, and leaves
// the routing table exactly as before, after SIGTERM and after the transport
// dies.
func TestDefaultRoute(t *testing.T) {
	l := newLab(t)
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// The client's current default routes go to the server over the WAN:
	// without the tunnel the LAN sees the client's WAN address.
	l.mustIn(l.Client, "ip", "route", "add", "default", "via", "192.0.2.2")
	l.mustIn(l.Client, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::2")
	lan4, lan6 := l.env["LAB_LAN_HOST"], l.env["LAB_LAN_HOST6"]
	if got := l.udpSource(l.Client, l.LAN, lan4); got != "192.0.2.1" {
		t.Fatalf("control: the LAN saw %q, want the WAN address 192.0.2.1", got)
	}
	before := l.routes(l.Client)

	for _, end := range []string{"sigterm", "transport dies"} {
		v := l.up(append(tunnelArgs, "--dev", "vpn0", "--default-route", "root@server")...)
		during := l.routes(l.Client)
		for _, want := range []string{"0.0.0.0/1 dev vpn0", "128.0.0.0/1 dev vpn0", "::/1 dev vpn0", "8000::/1 dev vpn0", "192.0.2.2 dev wan0"} {
			if !strings.Contains(during, want) {
				t.Errorf("%s: route %q missing:\n%s", end, want, during)
			}
		}
		if got := l.udpSource(l.Client, l.LAN, lan4); got != clientV4 {
			t.Errorf("%s: the LAN saw IPv4 source %q, want the tunnel's %s", end, got, clientV4)
		}
		if got := l.udpSource(l.Client, l.LAN, lan6); got != clientV6 {
			t.Errorf("%s: the LAN saw IPv6 source %q, want the tunnel's %s", end, got, clientV6)
		}
		// The SSH session stays up: traffic still flows a while later.
		time.Sleep(2 * time.Second)
		if err := l.ping(l.Client, lan6); err != nil {
			t.Errorf("%s: %v", end, err)
		}
		select {
		case <-v.done:
			t.Fatalf("%s: the client exited with the default route in place:\n%s", end, v.log)
		default:
		}
		if end == "sigterm" {
			if err, log := v.stop(t); err != nil {
				t.Fatalf("exit %v:\n%s", err, log)
			}
		} else {
			for _, pid := range l.pidsOf(l.Server, "sshvpn") {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			if err, log := v.wait(t, 30*time.Second); err == nil {
				t.Errorf("client exited 0 after the remote died:\n%s", log)
			}
		}
		if !eventually(5*time.Second, func() bool { return l.routes(l.Client) == before }) {
			t.Errorf("%s: routing table differs after exit:\nbefore:\n%s\nafter:\n%s", end, before, l.routes(l.Client))
		}
	}
}

const hookScript = `#!/bin/sh
# Records the hook's SSHVPN_* environment and counts its runs.
out=%s/hook-$SSHVPN_SIDE-$SSHVPN_SCRIPT_TYPE
env | grep '^SSHVPN_' | sort > "$out.env"
echo run >> "$out.count"
echo "hook $SSHVPN_SCRIPT_TYPE on $SSHVPN_DEV says hello"
`

// TestHooks: up and down hooks on both sides get the documented environment;
// the down hook runs once; a failing up hook stops the bring-up, on either
// side, with its status and stderr shown.
func TestHooks(t *testing.T) {
	l := newLab(t)
	dir := filepath.Join(l.dir, "hooks")
	os.MkdirAll(dir, 0o755)
	script := filepath.Join(dir, "record.sh")
	os.WriteFile(script, []byte(strings.ReplaceAll(hookScript, "%s", dir)), 0o755)
	failing := filepath.Join(dir, "fail.sh")
	os.WriteFile(failing, []byte("#!/bin/sh\necho nope, no route for you >&2\nexit 3\n"), 0o755)

	l.setKeys("root", append(policyArgs, "--dev", "svpn0", "--route", "198.18.30.0/24", "--up", script, "--down", script)...)
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "--route", "198.51.100.0/24", "--up", script, "--down", script, "root@server")...)
	if !strings.Contains(v.log.String(), "hook up on vpn0 says hello") {
		t.Errorf("hook output not in the log:\n%s", v.log)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	want := map[string][]string{
		"local": {"SSHVPN_ADDRS=198.18.0.1/30 2001:2::1/126", "SSHVPN_DEV=vpn0", "SSHVPN_MODE=tun", "SSHVPN_MTU=1500",
			"SSHVPN_PEER_ADDRS=198.18.0.2/30 2001:2::2/126", "SSHVPN_ROUTES=198.51.100.0/24", "SSHVPN_SERVER=192.0.2.2", "SSHVPN_SIDE=local"},
		"remote": {"SSHVPN_ADDRS=198.18.0.2/30 2001:2::2/126", "SSHVPN_DEV=svpn0", "SSHVPN_MODE=tun", "SSHVPN_MTU=1500",
			"SSHVPN_PEER=192.0.2.1", "SSHVPN_PEER_ADDRS=198.18.0.1/30 2001:2::1/126", "SSHVPN_ROUTES=198.18.30.0/24", "SSHVPN_SIDE=remote"},
	}
	for side, vars := range want {
		for _, typ := range []string{"up", "down"} {
			base := filepath.Join(dir, "hook-"+side+"-"+typ)
			if !eventually(5*time.Second, func() bool { _, err := os.Stat(base + ".count"); return err == nil }) {
				t.Errorf("%s %s hook did not run", side, typ)
				continue
			}
			b, _ := os.ReadFile(base + ".env")
			got := strings.Split(strings.TrimSpace(string(b)), "\n")
			exp := append(append([]string(nil), vars...), "SSHVPN_SCRIPT_TYPE="+typ, "SSHVPN_SCRIPT_CONTEXT=init")
			sort.Strings(exp)
			if strings.Join(got, "\n") != strings.Join(exp, "\n") {
				t.Errorf("%s %s hook environment:\n%s\nwant:\n%s", side, typ, strings.Join(got, "\n"), strings.Join(exp, "\n"))
			}
			if c, _ := os.ReadFile(base + ".count"); string(c) != "run\n" {
				t.Errorf("%s %s hook ran %d times", side, typ, strings.Count(string(c), "run"))
			}
		}
	}

	// The down hook runs once also when the transport dies.
	os.RemoveAll(dir + "/hook-local-down.count")
	v = l.up(append(tunnelArgs, "--up", script, "--down", script, "root@server")...)
	for _, pid := range l.pidsOf(l.Server, "sshvpn") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	v.wait(t, 30*time.Second)
	if c, _ := os.ReadFile(dir + "/hook-local-down.count"); string(c) != "run\n" {
		t.Errorf("after the transport died, the client's down hook ran %d times", strings.Count(string(c), "run"))
	}

	// A failing up hook on the client: no tunnel, the status and stderr shown.
	v = l.start(append(tunnelArgs, "--up", failing, "root@server")...)
	err, log := v.wait(t, 30*time.Second)
	if last := lastLine(log); err == nil || !strings.Contains(last, "exit status 3") || !strings.Contains(last, "nope, no route for you") {
		t.Errorf("failing local up hook: exit %v, last line %q", err, last)
	}
	// It is this machine's failure: never shown as the server's.
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "nope") && strings.Contains(line, "remote") {
			t.Errorf("the local up hook's failure is shown as the server's: %q", line)
		}
	}
	// ... and on the server.
	l.setKeys("root", append(policyArgs, "--up", failing)...)
	v = l.start(append(tunnelArgs, "root@server")...)
	err, log = v.wait(t, 30*time.Second)
	if last := lastLine(log); err == nil || !strings.Contains(last, "remote:") || !strings.Contains(last, "exit status 3") || !strings.Contains(last, "nope") {
		t.Errorf("failing remote up hook: exit %v, last line %q", err, last)
	}
	if n := strings.Count(log, "failed: exit status 3"); n != 1 {
		t.Errorf("the server's refusal is shown %d times, want once:\n%s", n, log)
	}
	if out, _ := l.in(l.Server, "ip", "-o", "link", "show", "type", "tun"); strings.Contains(out, ": ") {
		t.Errorf("a device is left on the server after its up hook failed:\n%s", out)
	}
}

// TestTAPBridge: tap mode with both ends bridged to a veth in their namespace
// joins two hosts into one Ethernet: ARP and neighbour discovery, ping over
// IPv4 and IPv6, and a TCP transfer with checksums.
func TestTAPBridge(t *testing.T) { tapBridge(t) }

// TestTAPBridgeStreams: the same, striped over two SSH connections: tap
// devices take several queues too.
func TestTAPBridgeStreams(t *testing.T) { tapBridge(t, "--streams", "2") }

func tapBridge(t *testing.T, extra ...string) {
	l := newLab(t)
	hostA, hostB := l.name+"-hosta", l.name+"-hostb"
	for _, c := range []struct{ host, ns, v4, v6 string }{
		{hostA, l.Client, "198.18.20.1/24", "2001:2:20::1/64"},
		{hostB, l.Server, "198.18.20.2/24", "2001:2:20::2/64"},
	} {
		t.Cleanup(func() { exec.Command("ip", "netns", "del", c.host).Run() })
		for _, cmd := range [][]string{
			{"ip", "netns", "add", c.host},
			{"ip", "-n", c.host, "link", "set", "lo", "up"},
			{"ip", "-n", c.ns, "link", "add", "br0", "type", "bridge"},
			{"ip", "-n", c.ns, "link", "set", "br0", "up"},
			{"ip", "link", "add", "port0", "netns", c.ns, "type", "veth", "peer", "name", "eth0", "netns", c.host},
			{"ip", "-n", c.ns, "link", "set", "port0", "master", "br0", "up"},
			{"ip", "-n", c.host, "addr", "add", c.v4, "dev", "eth0"},
			{"ip", "-n", c.host, "addr", "add", c.v6, "dev", "eth0", "nodad"},
			{"ip", "-n", c.host, "link", "set", "eth0", "up"},
		} {
			if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%q: %v\n%s", cmd, err, out)
			}
		}
	}
	const mac = "02:00:5e:10:00:01"
	l.setKeys("root", "--mode", "tap", "--bridge", "br0", "--dev", "tap0")
	v := l.up(slices.Concat([]string{"--mode", "tap", "--bridge", "br0", "--dev", "tap0", "--mac", mac}, extra, []string{"root@server"})...)
	if len(extra) > 0 {
		if !eventually(15*time.Second, func() bool { return len(l.pidsOf(l.Server, "sshvpn")) == 2 }) {
			t.Fatalf("sshvpn processes on the server: %v, want 2\n%s", l.pidsOf(l.Server, "sshvpn"), v.log)
		}
		if out := l.mustIn(l.Client, "ip", "-d", "link", "show", "tap0"); !strings.Contains(out, "multi_queue") {
			t.Errorf("tap0 is not multi-queue:\n%s", out)
		}
	}
	if out := l.mustIn(l.Client, "ip", "link", "show", "tap0"); !strings.Contains(out, "master br0") || !strings.Contains(out, mac) {
		t.Errorf("client tap0 not in br0 with MAC %s:\n%s", mac, out)
	}
	for _, addr := range []string{"198.18.20.2", "2001:2:20::2"} {
		if err := l.ping(hostA, addr); err != nil {
			t.Error(err)
		}
	}
	if err := l.ping(hostB, "198.18.20.1"); err != nil {
		t.Error(err)
	}
	macB := strings.Fields(l.mustIn(hostB, "cat", "/sys/class/net/eth0/address"))[0]
	if neigh := l.mustIn(hostA, "ip", "neigh", "show", "198.18.20.2"); !strings.Contains(neigh, macB) {
		t.Errorf("host A learned %q for 198.18.20.2 over ARP, want host B's MAC %s", neigh, macB)
	}

	var ln net.Listener
	inNetns(t, hostB, func() {
		var err error
		if ln, err = net.Listen("tcp", "[2001:2:20::2]:5002"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	var conn net.Conn
	inNetns(t, hostA, func() {
		var err error
		if conn, err = net.DialTimeout("tcp", "[2001:2:20::2]:5002", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	srv, ok := <-accepted
	if !ok {
		t.Fatal("no connection accepted")
	}
	defer srv.Close()
	if sent, got := transfer(t, conn, srv, 20<<20, 3); sent != got {
		t.Errorf("TCP over the bridged tap tunnel: checksum mismatch")
	}
}

// TestDefaultRouteBlocksUntunneled: --default-route over a tunnel that
// carries one family blocks the other (issue 15, item 8): with an IPv4-only
// tunnel up, IPv6 to the outside, which the client's own default route
// would carry in the clear over the WAN, fails at once; --allow-untunneled
// lets it out, as the warning says. The unreachable routes are sshvpn's:
// another session's sweep leaves a live session's alone, they go on exit,
// and a session killed with -9 has its leftovers swept by the next. An
// IPv6-only tunnel blocks IPv4 the same way.
func TestDefaultRouteBlocksUntunneled(t *testing.T) {
	l := newLab(t)
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// Without the tunnel, the outside (the LAN host behind the server)
	// is reached over the client's WAN, both families.
	l.mustIn(l.Client, "ip", "route", "add", "default", "via", "192.0.2.2")
	l.mustIn(l.Client, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::2")
	out4, out6 := l.env["LAB_LAN_HOST"], l.env["LAB_LAN_HOST6"]
	for _, host := range []string{out4, out6} {
		if err := l.ping(l.Client, host, "-c", "1"); err != nil {
			t.Fatalf("control, without the tunnel: %v", err)
		}
	}
	before := l.routes(l.Client)
	v4only := []string{"--addr", clientV4 + "/30", "--peer-addr", serverV4 + "/30", "--dev", "vpn0", "--default-route"}
	v6only := []string{"--addr", clientV6 + "/126", "--peer-addr", serverV6 + "/126", "--dev", "vpn0", "--default-route"}
	ours := func() string {
		return l.mustIn(l.Client, "ip", "route", "show", "proto", "115") + l.mustIn(l.Client, "ip", "-6", "route", "show", "proto", "115")
	}
	blocks6 := []string{"unreachable ::/1", "unreachable 8000::/1"}
	has := func(when string, wants ...string) {
		t.Helper()
		got := ours()
		for _, want := range wants {
			if !strings.Contains(got, want) {
				t.Errorf("%s: no %q among sshvpn's routes:\n%s", when, want, got)
			}
		}
	}
	// blocked checks that a ping to host fails, and fails at once, on the
	// unreachable route rather than by a timeout.
	blocked := func(when, host string) {
		t.Helper()
		err := l.ping(l.Client, host, "-c", "1")
		if err == nil {
			t.Errorf("%s: %s answered, by the WAN, outside the tunnel", when, host)
		} else if !strings.Contains(err.Error(), "No route to host") {
			t.Errorf("%s: the ping did not fail on an unreachable route: %v", when, err)
		}
	}
	restored := func(when string) {
		t.Helper()
		if !eventually(5*time.Second, func() bool { return l.routes(l.Client) == before }) {
			t.Errorf("%s: routing table differs:\nbefore:\n%s\nafter:\n%s", when, before, l.routes(l.Client))
		}
	}

	v := l.up(append(v4only, "root@server")...)
	for _, want := range []string{"the tunnel carries no IPv6", "--allow-untunneled"} {
		if !strings.Contains(v.log.String(), want) {
			t.Errorf("the warning does not say %q:\n%s", want, v.log)
		}
	}
	has("an IPv4-only tunnel", blocks6...)
	blocked("an IPv4-only tunnel", out6)
	if err := l.ping(l.Client, out4); err != nil {
		t.Errorf("IPv4 through the tunnel: %v", err)
	}
	// Another session starts (and sweeps): the live session's blocks stay.
	other := l.up("--addr", "198.18.0.5/30", "--peer-addr", "198.18.0.6/30", "--dev", "vpn1", "root@server")
	if err, log := other.stop(t); err != nil {
		t.Fatalf("the other session: exit %v:\n%s", err, log)
	}
	has("after another session's sweep", blocks6...)
	blocked("after another session's sweep", out6)
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	restored("after SIGTERM")
	if err := l.ping(l.Client, out6, "-c", "1"); err != nil {
		t.Errorf("after exit: %v", err)
	}

	// kill -9 leaves the blocks; the next session sweeps them.
	v = l.up(append(v4only, "root@server")...)
	v.cmd.Process.Kill()
	v.wait(t, 10*time.Second)
	has("after kill -9", blocks6...)
	if !eventually(15*time.Second, func() bool {
		return len(l.pidsOf(l.Server, "sshvpn")) == 0 && len(l.pidsOf(l.Client, "ssh")) == 0
	}) {
		t.Fatalf("the killed session's ssh or server side is still there")
	}
	// ... here one with --allow-untunneled, which blocks nothing: the
	// ping that the blocks stop would pass.
	v = l.up(append(v4only, "--allow-untunneled", "root@server")...)
	if !strings.Contains(v.log.String(), "removed a route that an earlier sshvpn session left behind") {
		t.Errorf("the killed session's blocks were not swept:\n%s", v.log)
	}
	if strings.Contains(v.log.String(), "carries no IPv6") {
		t.Errorf("a warning about blocking IPv6 with --allow-untunneled:\n%s", v.log)
	}
	if got := ours(); strings.Contains(got, "unreachable") {
		t.Errorf("unreachable routes with --allow-untunneled:\n%s", got)
	}
	if err := l.ping(l.Client, out6, "-c", "1"); err != nil {
		t.Errorf("IPv6 outside an IPv4-only tunnel with --allow-untunneled: %v", err)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	restored("after --allow-untunneled")

	// An IPv6-only tunnel blocks IPv4.
	v = l.up(append(v6only, "root@server")...)
	if !strings.Contains(v.log.String(), "the tunnel carries no IPv4") {
		t.Errorf("no warning about IPv4:\n%s", v.log)
	}
	has("an IPv6-only tunnel", "unreachable 0.0.0.0/1", "unreachable 128.0.0.0/1")
	blocked("an IPv6-only tunnel", out4)
	if err := l.ping(l.Client, out6); err != nil {
		t.Errorf("IPv6 through the tunnel: %v", err)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	restored("after the IPv6-only tunnel")
}
