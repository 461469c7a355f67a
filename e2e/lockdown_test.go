package e2e

import (
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The policy of the forced-command tests: the server's addresses, which no
// client proposal can change.
var policyArgs = []string{
	"--addr", serverV4 + "/30", "--peer-addr", clientV4 + "/30",
	"--addr", serverV6 + "/126", "--peer-addr", clientV6 + "/126",
}

// TestForcedCommand: a restrict,command= key made by "sshvpn authorized-key"
// carries traffic, refuses a shell, a command and port forwarding, and gives
// the client the admin's addresses whatever it proposes or asks to run.
func TestForcedCommand(t *testing.T) {
	l := newLab(t)
	ssh := func(args ...string) (string, error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", l.Client, "ssh", "-F", l.SSHConfig}, args...)...)
		cmd.Stdin = nil // EOF at once: a forced sshvpn ends without a handshake
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Control: the lab's unrestricted key may forward (to the sshd itself,
	// which answers with its banner).
	forward := []string{"-o", "ExitOnForwardFailure=yes", "-W", "192.0.2.2:22", "server"}
	if out, err := ssh(forward...); !strings.Contains(out, "SSH-2.0-") {
		t.Fatalf("control: forwarding with the plain key failed: %v\n%s", err, out)
	}
	line := l.setKeys("root", policyArgs...)
	if !strings.HasPrefix(line, `restrict,command="`+l.Bin+` --remote `) {
		t.Fatalf("authorized_keys line: %q", line)
	}

	// The client proposes other addresses and even asks for another remote
	// command line: the forced command ignores both.
	v := l.up("--addr", "198.18.9.1/30", "--peer-addr", "198.18.9.2/30",
		"--remote-cmd", "sshvpn --remote --addr 198.18.7.2/30 --peer-addr 198.18.7.1/30", "root@server")
	log := v.log.String()
	if !strings.Contains(log, "the server assigned the tunnel addresses") {
		t.Errorf("the client did not say it was given other addresses:\n%s", log)
	}
	for _, c := range []struct{ ns, addr string }{
		{l.Client, serverV4}, {l.Server, clientV4}, {l.Client, serverV6}, {l.Server, clientV6},
	} {
		if err := l.ping(c.ns, c.addr); err != nil {
			t.Error(err)
		}
	}
	for _, ns := range []string{l.Client, l.Server} {
		out := l.mustIn(ns, "ip", "addr")
		if strings.Contains(out, "198.18.9.") || strings.Contains(out, "198.18.7.") {
			t.Errorf("a proposed address was configured in %s:\n%s", ns, out)
		}
	}

	// A person trying a command with the key reads one line saying what
	// the key is for, not frame bytes.
	if out, _ := ssh("server", "id"); strings.Contains(out, "uid=") || !strings.Contains(out, "runs sshvpn only") ||
		strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\r' }) {
		t.Errorf("the restricted key and a command, the output %q", out)
	}
	if out, _ := ssh("-tt", "server"); !strings.Contains(out, "PTY allocation request failed") || strings.Contains(out, "#") {
		t.Errorf("the restricted key got a terminal:\n%s", out)
	}
	out, err := ssh(forward...)
	if err == nil || strings.Contains(out, "SSH-2.0-") {
		t.Errorf("port forwarding with the restricted key: %v\n%s", err, out)
	}
}

// TestPolicyRefusals: what the policy does not allow is refused with a
// message naming the policy.
func TestPolicyRefusals(t *testing.T) {
	l := newLab(t)
	l.setKeys("root", policyArgs...)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "tap"}, "tun mode only"},
		{[]string{"--remote-dev", "eth0"}, `the client may not ask for "eth0"`},
		{[]string{"--remote-route", "10.99.0.0/24"}, "--allow-route"},
	} {
		v := l.start(append(c.args, "root@server")...)
		err, log := v.wait(t, 30*time.Second)
		last := lastLine(log)
		if err == nil || !strings.Contains(last, "remote:") || !strings.Contains(last, c.want) {
			t.Errorf("%v: exit %v, last line %q; want a refusal mentioning %q", c.args, err, last, c.want)
		}
	}
}

// TestAntiSpoofing: packets from the client with a source address it may not
// use never reach the server's LAN; --allow-source admits a network.
func TestAntiSpoofing(t *testing.T) {
	l := newLab(t)
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	const spoof4, spoof6 = "198.18.5.5", "2001:2:5::5"
	lanHost := map[bool]string{false: l.env["LAB_LAN_HOST"], true: l.env["LAB_LAN_HOST6"]}

	// probe sends UDP datagrams from src (an address on the client's tun)
	// to the LAN host and reports whether any arrived.
	probe := func(src string, v6 bool) bool {
		t.Helper()
		var pc net.PacketConn
		inNetns(t, l.LAN, func() {
			var err error
			if pc, err = net.ListenPacket("udp", net.JoinHostPort(lanHost[v6], "7001")); err != nil {
				t.Errorf("listen on the LAN host: %v", err)
			}
		})
		if pc == nil {
			return false
		}
		defer pc.Close()
		var conn net.Conn
		inNetns(t, l.Client, func() {
			d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}
			var err error
			if conn, err = d.Dial("udp", net.JoinHostPort(lanHost[v6], "7001")); err != nil {
				t.Errorf("dial from %s: %v", src, err)
			}
		})
		if conn == nil {
			return false
		}
		defer conn.Close()
		for range 5 {
			conn.Write([]byte("hello from " + src))
			time.Sleep(20 * time.Millisecond)
		}
		pc.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 100)
		n, _, err := pc.ReadFrom(buf)
		if err == nil && !strings.Contains(string(buf[:n]), src) {
			t.Errorf("unexpected datagram %q", buf[:n])
		}
		return err == nil
	}
	connect := func(extra ...string) *vpn {
		l.setKeys("root", append(policyArgs, extra...)...)
		v := l.up("--dev", "vpn0", "root@server")
		// Routes and extra addresses inside the client namespace (issue 4
		// adds --route; here the test sets them up by hand).
		l.mustIn(l.Client, "ip", "route", "add", "198.51.100.0/24", "dev", "vpn0")
		l.mustIn(l.Client, "ip", "-6", "route", "add", "2001:db8:2::/64", "dev", "vpn0")
		l.mustIn(l.Client, "ip", "addr", "add", spoof4+"/32", "dev", "vpn0")
		l.mustIn(l.Client, "ip", "addr", "add", spoof6+"/128", "dev", "vpn0", "nodad")
		return v
	}

	v := connect()
	if !probe(clientV4, false) || !probe(clientV6, true) {
		t.Fatal("datagrams from the client's own tunnel address did not reach the LAN")
	}
	if probe(spoof4, false) {
		t.Error("a datagram with a spoofed IPv4 source reached the server's LAN")
	}
	if probe(spoof6, true) {
		t.Error("a datagram with a spoofed IPv6 source reached the server's LAN")
	}
	// The admin learns of it in the server's system log, with the key and
	// the client; the client (who may be the attacker) is not told.
	spoofed := regexp.MustCompile(`dropping packets .* src=(198\.18\.5\.5|2001:2:5::5)`)
	if !eventually(5*time.Second, func() bool { return spoofed.MatchString(l.Syslog.String()) }) {
		t.Errorf("the server's system log has no report of the spoofed packets:\n%s", l.Syslog)
	}
	if !l.syslogHas(time.Second, "dropping packets", "key=SHA256:", `client="192.0.2.1 port `, "user=root") {
		t.Errorf("the spoofing report does not name the key, the client and the account:\n%s", l.Syslog)
	}
	err, log := v.stop(t)
	if err != nil || strings.Contains(log, "dropping packets") {
		t.Errorf("exit %v; the spoofing report must reach the server's admin, not the client:\n%s", err, log)
	}
	if !l.syslogHas(5*time.Second, "dropped packets", "from_peer=") {
		t.Errorf("the server's system log has no drop count at the end of the session:\n%s", l.Syslog)
	}

	// The admin allows networks behind the client: the same sources pass.
	connect("--allow-source", "198.18.5.0/24", "--allow-source", "2001:2:5::/48")
	l.mustIn(l.Server, "ip", "route", "add", "198.18.5.0/24", "dev", "tun0")
	l.mustIn(l.Server, "ip", "-6", "route", "add", "2001:2:5::/48", "dev", "tun0")
	if !probe(spoof4, false) || !probe(spoof6, true) {
		t.Error("with --allow-source, datagrams from the allowed networks did not reach the LAN")
	}
}

// TestUnprivilegedRemote: an account without privileges serves the tunnel on a
// device the admin made for it, which keeps its persistence and addresses.
func TestUnprivilegedRemote(t *testing.T) {
	user := userName()
	l := newLab(t, "LAB_USER="+user)
	l.userDevice(user)

	// Without a device of its own, the account gets an error naming the fix.
	l.setKeys(user, "--addr", "198.18.0.10/30", "--peer-addr", "198.18.0.9/30")
	v := l.start(user + "@server")
	err, log := v.wait(t, 30*time.Second)
	if last := lastLine(log); err == nil || !strings.Contains(last, "ip tuntap add dev NAME mode tun user "+user) || !strings.Contains(last, "--remote-dev NAME") {
		t.Errorf("unprivileged remote without a device: exit %v, last line %q", err, last)
	}
	// The advice as written: with no forced command naming it, the
	// client asks for the device the admin made for the account.
	l.setKeys(user, "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30")
	v = l.up("--remote-dev", "svpn0", user+"@server")
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("client exit %v:\n%s", err, log)
	}
	// Another account's device, or one that is not there, stays refused.
	v = l.start("--remote-dev", "tun0", user+"@server")
	if err, log = v.wait(t, 30*time.Second); err == nil || !strings.Contains(lastLine(log), `may not ask for "tun0"`) {
		t.Errorf("--remote-dev of a device the account does not own: exit %v, last line %q", err, lastLine(log))
	}
	// The prepared device's address, but the key does not name the device:
	// the address is in use there, and the error says which device has it.
	l.setKeys(user, "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30")
	v = l.start(user + "@server")
	err, log = v.wait(t, 30*time.Second)
	if last := lastLine(log); err == nil || !strings.Contains(last, "on svpn0") || !strings.Contains(last, "--dev svpn0") {
		t.Errorf("unprivileged remote, address on another device: exit %v, last line %q", err, last)
	}

	// A prepared device that lacks the policy's address: the error says
	// what the admin should run.
	l.setKeys(user, "--dev", "svpn0", "--addr", "198.18.0.6/30", "--peer-addr", clientV4+"/30")
	v = l.start(user + "@server")
	err, log = v.wait(t, 30*time.Second)
	if last := lastLine(log); err == nil || !strings.Contains(last, "ip addr add 198.18.0.6/30 dev svpn0") {
		t.Errorf("unprivileged remote on a device without the address: exit %v, last line %q", err, last)
	}

	l.setKeys(user, "--dev", "svpn0", "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30")
	v = l.up(user + "@server")
	if pids := l.pidsOf(l.Server, "sshvpn"); len(pids) != 1 || uidOf(t, pids[0]) == 0 {
		t.Errorf("the remote sshvpn does not run as the unprivileged account (pids %v)", pids)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err := l.ping(l.Server, clientV4); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("client exit %v:\n%s", err, log)
	}
	// The remote side lets go of the device as it exits.
	if !eventually(10*time.Second, func() bool { return len(l.pidsOf(l.Server, "sshvpn")) == 0 }) {
		t.Errorf("the remote sshvpn did not exit: %v", l.pidsOf(l.Server, "sshvpn"))
	}
	out := l.mustIn(l.Server, "ip", "-d", "addr", "show", "svpn0")
	if !strings.Contains(out, "persist on") || !strings.Contains(out, serverV4+"/30") {
		t.Errorf("the admin's device lost its persistence or address:\n%s", out)
	}
}

func uidOf(t *testing.T, pid int) int {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/proc", strconv.Itoa(pid)), &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid)
}

// TestPool: three clients of one pool get distinct addresses at once and
// reach each other through the forwarding server; killing one client's ssh
// frees its lease; a full pool refuses.
func TestPool(t *testing.T) {
	l := newLab(t, "LAB_CLIENTS=3")
	state := filepath.Join(l.dir, "state")
	l.setKeys("root", "--pool", "198.18.8.0/24", "--pool", "2001:2:8::/64", "--dev", "pool%d", "--state-dir", state)
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	clients := []string{l.Client, l.Client + "2", l.Client + "3"}
	vpns := make([]*vpn, 3)
	addrs := make([]string, 3)
	for i, ns := range clients {
		vpns[i] = l.upIn(ns, "--dev", "vpn0", "root@server")
		addrs[i] = tunAddr(t, l, ns, "-4")
	}
	t.Logf("pool addresses: %v", addrs)
	if addrs[0] == addrs[1] || addrs[1] == addrs[2] || addrs[0] == addrs[2] {
		t.Fatalf("clients share addresses: %v", addrs)
	}
	for i, ns := range clients {
		for j := range clients {
			if i != j {
				if err := l.ping(ns, addrs[j]); err != nil {
					t.Error(err)
				}
			}
		}
	}
	six := tunAddr(t, l, l.Client2(), "-6")
	if err := l.ping(l.Client, six); err != nil {
		t.Errorf("IPv6 between pool clients: %v", err)
	}
	leases, _ := filepath.Glob(filepath.Join(state, "lease-*"))
	if len(leases) != 3 {
		t.Errorf("%d lease files, want 3: %v", len(leases), leases)
	}

	// Kill the second client's ssh: the server side ends and frees the lease,
	// and the next client gets the freed address.
	ssh := childPID(t, vpns[1].cmd.Process.Pid, "ssh")
	syscall.Kill(ssh, syscall.SIGKILL)
	if err, log := vpns[1].wait(t, 30*time.Second); err == nil {
		t.Errorf("client exited 0 after its ssh was killed:\n%s", log)
	}
	if !eventually(10*time.Second, func() bool {
		leases, _ := filepath.Glob(filepath.Join(state, "lease-*"))
		return len(leases) == 2
	}) {
		t.Error("the killed client's lease was not freed")
	}
	l.upIn(clients[1], "--dev", "vpn0", "root@server")
	if got := tunAddr(t, l, clients[1], "-4"); got != addrs[1] {
		t.Errorf("the reconnected client got %s, want the freed %s", got, addrs[1])
	}

	// A pool with room for one client: the second is refused.
	l.setKeys("root", "--pool", "198.18.9.0/30", "--state-dir", filepath.Join(l.dir, "state2"))
	stopAll := func() {
		for _, ns := range clients {
			for _, pid := range l.pidsOf(ns, "sshvpn") {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
	stopAll()
	l.upIn(clients[0], "--dev", "vpn1", "root@server")
	v := l.startIn(clients[2], "--dev", "vpn1", "root@server")
	err, log := v.wait(t, 30*time.Second)
	if last := lastLine(log); err == nil || !strings.Contains(last, "every address in the pool is in use") {
		t.Errorf("second client of a full pool: exit %v, last line %q", err, last)
	}
}

// Client2 is the second client namespace of a LAB_CLIENTS lab.
func (l *lab) Client2() string { return l.Client + "2" }

// tunAddr returns the address of device vpn0 in ns (family "-4" or "-6").
func tunAddr(t *testing.T, l *lab, ns, family string) string {
	t.Helper()
	out := l.mustIn(ns, "ip", family, "-o", "addr", "show", "dev", "vpn0", "scope", "global")
	f := strings.Fields(out)
	for i, w := range f {
		if (w == "inet" || w == "inet6") && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0]
		}
	}
	t.Fatalf("no %s address on vpn0 in %s:\n%s", family, ns, out)
	return ""
}

// childPID finds the child of parent whose command name is comm.
func childPID(t *testing.T, parent int, comm string) int {
	t.Helper()
	pids := children(t, parent, comm)
	if len(pids) == 0 {
		t.Fatalf("no %s child of %d", comm, parent)
	}
	return pids[0]
}

// userDevice makes svpn0 on the server for account user, with the
// server's tunnel address, as an admin would for an unprivileged remote.
func (l *lab) userDevice(user string) {
	l.t.Helper()
	l.mustIn(l.Server, "ip", "tuntap", "add", "dev", "svpn0", "mode", "tun", "user", user)
	l.mustIn(l.Server, "ip", "addr", "add", serverV4+"/30", "dev", "svpn0")
	l.mustIn(l.Server, "ip", "link", "set", "svpn0", "up")
}
