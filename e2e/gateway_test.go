package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// fakeResolvconf is a resolvconf for the client (the lab has neither
// systemd-resolved nor resolvconf, and the machine's own resolv.conf is
// not the test's to change): "-a IFACE" keeps stdin in $DIR/IFACE, "-d
// IFACE" removes it.
const fakeResolvconf = `#!/bin/sh
set -e
case $1 in
-a) cat > "%[1]s/$2" ;;
-d) rm -f "%[1]s/$2" ;;
*) exit 2 ;;
esac
`

// serveDNS answers A and AAAA queries for name with addr4 and addr6 on
// pc until it is closed: the LAN's resolver.
func serveDNS(pc net.PacketConn, name string, addr4, addr6 [16]byte) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
		b.EnableCompression()
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		if strings.EqualFold(q.Name.String(), name) {
			switch q.Type {
			case dnsmessage.TypeA:
				b.AResource(rh, dnsmessage.AResource{A: [4]byte(addr4[12:])})
			case dnsmessage.TypeAAAA:
				b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: addr6})
			}
		}
		if msg, err := b.Finish(); err == nil {
			pc.WriteTo(msg, from)
		}
	}
}

// TestGateway: with --nat in the server's forced command, a client with
// --default-route reaches a LAN host that has no route back to the
// tunnel (it sees the server's address), and --dns makes names resolve
// through the tunnel with the LAN's resolver; everything is put back when
// the client exits. Without --nat, and without forwarding, the client is
// warned instead of left with a black hole.
func TestGateway(t *testing.T) {
	l := newLab(t)
	lan4, lan6 := l.env["LAB_LAN_HOST"], l.env["LAB_LAN_HOST6"]
	// The LAN host knows no way back to the tunnel; the server's way
	// out (its default route) is the LAN.
	l.mustIn(l.LAN, "ip", "route", "del", "default")
	l.mustIn(l.LAN, "ip", "-6", "route", "del", "default")
	l.mustIn(l.Server, "ip", "route", "add", "default", "via", lan4)
	l.mustIn(l.Server, "ip", "-6", "route", "add", "default", "via", lan6)
	sysctls := func() string {
		return l.mustIn(l.Server, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
	}
	before := sysctls()
	if strings.Fields(before)[0] != "0" {
		t.Fatalf("the lab's server forwards already: %q", before)
	}
	args := []string{"--addr", serverV4 + "/30", "--peer-addr", clientV4 + "/30", "--addr", serverV6 + "/126", "--peer-addr", clientV6 + "/126"}

	// Without --nat: a warning with the fix.
	l.setKeys("root", args...)
	v := l.up(append(tunnelArgs, "--default-route", "root@server")...)
	// (The warning follows the "tunnel up" line.)
	if !eventually(5*time.Second, func() bool {
		log := v.log.String()
		return strings.Contains(log, "does not forward ipv4 and ipv6 packets") && strings.Contains(log, "--nat")
	}) {
		t.Errorf("no warning that the server does not forward:\n%s", v.log)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}

	// With --nat and --dns.
	resolv := filepath.Join(l.dir, "resolvconf")
	bin := filepath.Join(l.dir, "fakebin")
	for _, d := range []string{resolv, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "resolvconf"), []byte(strings.ReplaceAll(fakeResolvconf, "%[1]s", resolv)), 0o755); err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	inNetns(t, l.LAN, func() {
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(lan4, "53")); err != nil {
			t.Fatalf("resolver: %v", err)
		}
	})
	defer pc.Close()
	go serveDNS(pc, "lan.test.", [16]byte(net.ParseIP(lan4).To16()), [16]byte(net.ParseIP(lan6)))

	l.setKeys("root", append(args, "--nat")...)
	l.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	v = l.up(append(tunnelArgs, "--dev", "vpn0", "--default-route", "--dns", lan4, "root@server")...)
	if strings.Contains(v.log.String(), "does not forward") {
		t.Errorf("warned with --nat:\n%s", v.log)
	}
	if err := l.ping(l.Client, lan4); err != nil {
		t.Error(err)
	}
	if err := l.ping(l.Client, lan6); err != nil {
		t.Error(err)
	}
	if got := l.udpSource(l.Client, l.LAN, lan4); got != "198.51.100.1" {
		t.Errorf("the LAN host saw %q, want the server's LAN address (masquerade)", got)
	}
	if got := l.udpSource(l.Client, l.LAN, lan6); got != "2001:db8:2::1" {
		t.Errorf("the LAN host saw %q over IPv6, want the server's LAN address", got)
	}
	l.transferBothWaysIn(l.LAN, lan4, 10<<20)
	if out := l.mustIn(l.Server, "nft", "list", "table", "inet", "sshvpn"); !strings.Contains(out, "masquerade") {
		t.Errorf("no masquerade rule:\n%s", out)
	}
	// DNS: the client's resolver configuration names the LAN's, and
	// names resolve through the tunnel.
	conf, err := os.ReadFile(filepath.Join(resolv, "vpn0.sshvpn"))
	if err != nil || !strings.Contains(string(conf), "nameserver "+lan4) {
		t.Fatalf("resolvconf got %q (%v)", conf, err)
	}
	ns := strings.TrimPrefix(strings.TrimSpace(string(conf)), "nameserver ")
	inNetns(t, l.Client, func() {
		if a, err := queryA(ns, "lan.test."); err != nil || a != lan4 {
			t.Errorf("lan.test from %s through the tunnel: %q, %v", ns, a, err)
		}
	})

	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	if !eventually(5*time.Second, func() bool { return sysctls() == before }) {
		t.Errorf("forwarding sysctls after exit %q, want %q", sysctls(), before)
	}
	if out, err := l.in(l.Server, "nft", "list", "table", "inet", "sshvpn"); err == nil {
		t.Errorf("sshvpn's nftables table is still there:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(resolv, "vpn0.sshvpn")); err == nil {
		t.Error("the DNS setting was not undone")
	}
}

// queryA asks the DNS server at addr for name's IPv4 address, as a stub
// resolver would (the machine's own resolver configuration is not the
// test's).
func queryA(addr, name string) (string, error) {
	c, err := net.Dial("udp", net.JoinHostPort(addr, "53"))
	if err != nil {
		return "", err
	}
	defer c.Close()
	q := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	q.StartQuestions()
	q.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, err := q.Finish()
	if err != nil {
		return "", err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	var p dnsmessage.Parser
	if h, err := p.Start(buf[:n]); err != nil || h.ID != 4242 {
		return "", fmt.Errorf("bad answer: %v", err)
	}
	p.SkipAllQuestions()
	a, err := p.AnswerHeader()
	if err != nil {
		return "", err
	}
	if a.Type != dnsmessage.TypeA {
		return "", fmt.Errorf("answer of type %v", a.Type)
	}
	r, err := p.AResource()
	if err != nil {
		return "", err
	}
	return net.IP(r.A[:]).String(), nil
}

// natArgs are the server's addresses and the client's for the --nat
// tests: the client takes them from the forced command.
var natArgs = []string{"--addr", serverV4 + "/30", "--peer-addr", clientV4 + "/30", "--addr", serverV6 + "/126", "--peer-addr", clientV6 + "/126"}

// serverRun is where name under /run is for the lab's sshd and its
// sessions, which have a /run of their own: root's state directory,
// /run/sshvpn, holds nat.json.
func (l *lab) serverRun(name string) string {
	return filepath.Join("/proc", l.env["LAB_SSHD_PID"], "root", "run", name)
}

// forwarding is the server's net.ipv4.ip_forward and
// net.ipv6.conf.all.forwarding, as "0 0".
func (l *lab) forwarding() string {
	return strings.Join(strings.Fields(l.mustIn(l.Server, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")), " ")
}

// TestGatewayOnlyNATSessions: the forwarding that a --nat session turns on
// carries that session alone. While it is up (the client reaches the LAN,
// masqueraded), a host with no tunnel whose default route is the server,
// and another account's tunnel without --nat, reach nothing on the LAN,
// though the LAN host would answer them (its default route is the server).
func TestGatewayOnlyNATSessions(t *testing.T) {
	user := userName()
	l := newLab(t, "LAB_CLIENTS=2", "LAB_USER="+user)
	lan4, lan6 := l.env["LAB_LAN_HOST"], l.env["LAB_LAN_HOST6"]
	// The server's way out is the LAN (as in TestGateway; older sshvpn
	// needed a default route).
	l.mustIn(l.Server, "ip", "route", "add", "default", "via", lan4)
	l.mustIn(l.Server, "ip", "-6", "route", "add", "default", "via", lan6)
	if got := l.forwarding(); got != "0 0" {
		t.Fatalf("the lab's server forwards already: %q", got)
	}
	// Before any session, the host without a tunnel reaches nothing: the
	// server does not forward.
	if got := l.udpSource(l.Client2(), l.LAN, lan4); got != "" {
		t.Fatalf("before any session, the LAN host got a packet from %s", got)
	}

	l.setKeys("root", append(natArgs, "--nat")...)
	l.up("--dev", "vpn0", "--default-route", "root@server")
	if got := l.udpSource(l.Client, l.LAN, lan4); got != "198.51.100.1" {
		t.Errorf("the --nat client reached the LAN host as %q, want the server's LAN address", got)
	}
	if got := l.udpSource(l.Client, l.LAN, lan6); got != "2001:db8:2::1" {
		t.Errorf("the --nat client reached the LAN host over IPv6 as %q, want the server's LAN address", got)
	}
	if got := l.forwarding(); got != "1 1" {
		t.Fatalf("forwarding with the --nat session up: %q, want on", got)
	}

	// A host with no tunnel, routing through the server.
	if got := l.udpSource(l.Client2(), l.LAN, lan4); got != "" {
		t.Errorf("a host without a tunnel reached the LAN through the --nat server, as %s", got)
	}
	if err := l.ping(l.Client2(), lan4, "-c", "1"); err == nil {
		t.Error("a host without a tunnel pings the LAN through the --nat server")
	}

	// Another account's tunnel, without --nat, on a device the admin made
	// for it.
	l.mustIn(l.Server, "ip", "tuntap", "add", "dev", "svpn0", "mode", "tun", "user", user)
	l.mustIn(l.Server, "ip", "addr", "add", "198.18.0.6/30", "dev", "svpn0")
	l.mustIn(l.Server, "ip", "addr", "add", "2001:2::6/126", "dev", "svpn0", "nodad")
	l.mustIn(l.Server, "ip", "link", "set", "svpn0", "up")
	l.setKeys(user, "--dev", "svpn0", "--addr", "198.18.0.6/30", "--peer-addr", "198.18.0.5/30", "--addr", "2001:2::6/126", "--peer-addr", "2001:2::5/126")
	l.upIn(l.Client2(), "--dev", "vpn0", "--default-route", user+"@server")
	if err := l.ping(l.Client2(), "198.18.0.6"); err != nil {
		t.Fatalf("the tunnel without --nat does not work: %v", err)
	}
	if got := l.udpSource(l.Client2(), l.LAN, lan4); got != "" {
		t.Errorf("a tunnel without --nat reached the LAN through the --nat server, as %s", got)
	}
	if got := l.udpSource(l.Client2(), l.LAN, lan6); got != "" {
		t.Errorf("a tunnel without --nat reached the LAN over IPv6 through the --nat server, as %s", got)
	}
	// The --nat session still does.
	if got := l.udpSource(l.Client, l.LAN, lan4); got != "198.51.100.1" {
		t.Errorf("with both sessions up, the --nat client reached the LAN host as %q", got)
	}
	t.Logf("server's table:\n%s", l.mustIn(l.Server, "nft", "list", "table", "inet", "sshvpn"))
}

// TestGatewayLANNotDefault: --nat works where the LAN is not behind the
// server's default route: with no default route at all, and with one that
// goes elsewhere. The client's packets leave masqueraded by whatever
// interface the route to their destination takes.
func TestGatewayLANNotDefault(t *testing.T) {
	l := newLab(t, "LAB_CLIENTS=2")
	lan4, lan6 := l.env["LAB_LAN_HOST"], l.env["LAB_LAN_HOST6"]
	// The LAN host knows no way back to the tunnel: only a masqueraded
	// packet gets an answer.
	l.mustIn(l.LAN, "ip", "route", "del", "default")
	l.mustIn(l.LAN, "ip", "-6", "route", "del", "default")
	if out := l.mustIn(l.Server, "ip", "route", "show", "default") + l.mustIn(l.Server, "ip", "-6", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Fatalf("the lab's server has a default route:\n%s", out)
	}
	l.setKeys("root", append(natArgs, "--nat")...)

	check := func(what string) {
		t.Helper()
		v := l.up("--dev", "vpn0", "--default-route", "root@server")
		if err := l.ping(l.Client, lan4); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if err := l.ping(l.Client, lan6); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if got := l.udpSource(l.Client, l.LAN, lan4); got != "198.51.100.1" {
			t.Errorf("%s: the LAN host saw %q, want the server's LAN address", what, got)
		}
		if got := l.udpSource(l.Client, l.LAN, lan6); got != "2001:db8:2::1" {
			t.Errorf("%s: the LAN host saw %q over IPv6, want the server's LAN address", what, got)
		}
		if err, log := v.stop(t); err != nil {
			t.Fatalf("%s: exit %v:\n%s", what, err, log)
		}
	}
	check("no default route")

	// A default route by the second client's link (the "Internet"): the
	// LAN is elsewhere, and the way out is masqueraded too.
	l.mustIn(l.Server, "ip", "route", "add", "default", "via", "203.0.113.9")
	check("default route elsewhere")
	v := l.up("--dev", "vpn0", "--default-route", "root@server")
	if got := l.udpSource(l.Client, l.Client2(), "203.0.113.9"); got != "203.0.113.10" {
		t.Errorf("out of the default route, the host saw %q, want the server's address there", got)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
}

// TestGatewayKilledSwept: kill -9 of a --nat remote leaves its rules,
// forwarding and nat.json; the next session to start, without --nat,
// sweeps them.
func TestGatewayKilledSwept(t *testing.T) {
	l := newLab(t)
	l.mustIn(l.Server, "ip", "route", "add", "default", "via", l.env["LAB_LAN_HOST"])
	l.mustIn(l.Server, "ip", "-6", "route", "add", "default", "via", l.env["LAB_LAN_HOST6"])
	state := l.serverRun("sshvpn/nat.json")
	l.setKeys("root", append(natArgs, "--nat")...)
	v := l.up("--dev", "vpn0", "root@server")
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no NAT state while the --nat session is up: %v", err)
	}
	remotes := l.pidsOf(l.Server, "sshvpn")
	if len(remotes) != 1 {
		t.Fatalf("sshvpn processes on the server: %v, want one", remotes)
	}
	if err := syscall.Kill(remotes[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err, log := v.wait(t, 30*time.Second); err == nil {
		t.Errorf("client exited 0 after its remote was killed:\n%s", log)
	}
	// What it leaves.
	if _, err := l.in(l.Server, "nft", "list", "table", "inet", "sshvpn"); err != nil {
		t.Fatal("the killed session's table is gone already: the test shows nothing")
	}
	if got := l.forwarding(); got != "1 1" {
		t.Fatalf("forwarding after the kill: %q, want still on", got)
	}

	l.setKeys("root", natArgs...)
	l.up("--dev", "vpn0", "root@server")
	if !eventually(5*time.Second, func() bool { return l.forwarding() == "0 0" }) {
		t.Errorf("forwarding after the next session started: %q, want back off", l.forwarding())
	}
	if out, err := l.in(l.Server, "nft", "list", "table", "inet", "sshvpn"); err == nil {
		t.Errorf("the killed session's table is still there:\n%s", out)
	}
	if b, err := os.ReadFile(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("nat.json is still there (%v):\n%s", err, b)
	}
}
