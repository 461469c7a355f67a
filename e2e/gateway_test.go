package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
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
