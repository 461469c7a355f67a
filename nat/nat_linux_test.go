package nat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/sshvpn/sshvpn/internal/netnstest"
	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// addLink adds link l to the namespace of h.
func addLink(t *testing.T, h *netlink.Handle, l netlink.Link) {
	t.Helper()
	if err := h.LinkAdd(l); err != nil {
		t.Fatalf("adding %s: %v", l.Attrs().Name, err)
	}
}

// setUp brings link name of h's namespace up with addresses addrs.
func setUp(t *testing.T, h *netlink.Handle, name string, addrs ...string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	for _, a := range addrs {
		ad, err := netlink.ParseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		ad.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(l, ad); err != nil {
			t.Fatalf("address %s on %s: %v", a, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("%s up: %v", name, err)
	}
}

// defaultVia adds a default route via gw (IPv4 or IPv6) in h's namespace.
func defaultVia(t *testing.T, h *netlink.Handle, gw string) {
	t.Helper()
	ip := net.ParseIP(gw)
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if ip.To4() == nil {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	if err := h.RouteAdd(&netlink.Route{Dst: dst, Gw: ip}); err != nil {
		t.Fatalf("default via %s: %v", gw, err)
	}
}

// here is a netlink handle of the calling thread's namespace.
func here(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// veth adds a veth pair name, name+"p" to h's namespace and brings the peer
// up (the kernel here may have no dummy devices).
func veth(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	addLink(t, h, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"})
	setUp(t, h, name+"p")
}

// uplinkNS gives the namespace a default route of each family out of
// "up0", and devices devs for sessions.
func uplinkNS(t *testing.T, v4, v6 bool, devs ...string) {
	t.Helper()
	h := here(t)
	veth(t, h, "up0")
	setUp(t, h, "up0", "198.51.100.1/24", "2001:db8:100::1/64")
	if v4 {
		defaultVia(t, h, "198.51.100.2")
	}
	if v6 {
		defaultVia(t, h, "2001:db8:100::2")
	}
	for _, d := range devs {
		veth(t, h, d)
		setUp(t, h, d)
	}
}

func sysctl(t *testing.T, name string) string {
	t.Helper()
	v, err := readSysctl(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func setSysctl(t *testing.T, name, v string) {
	t.Helper()
	if err := writeSysctl(name, v); err != nil {
		t.Fatal(err)
	}
}

// ruleset lists the rules of table inet sshvpn as "chain: rule # comment",
// sorted; nil if the table does not exist.
func ruleset(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == Table }) {
		return nil
	}
	out := []string{}
	for _, ch := range []*nftables.Chain{postrouting, forward} {
		rules, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatalf("rules of %s: %v", ch.Name, err)
		}
		for _, r := range rules {
			out = append(out, fmt.Sprintf("%s: %s # %s", ch.Name, render(r.Exprs), comment(r.UserData)))
		}
	}
	slices.Sort(out)
	return out
}

// render writes exprs the way nft(8) does, for the expressions sshvpn uses.
func render(exprs []expr.Any) string {
	var out []string
	lhs, mask := "", []byte(nil)
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			lhs = map[expr.MetaKey]string{expr.MetaKeyNFPROTO: "meta nfproto", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname"}[e.Key]
			mask = nil
		case *expr.Payload:
			lhs = fmt.Sprintf("payload@%d/%d", e.Offset, e.Len)
			switch {
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 12 && e.Len == 4:
				lhs = "ip saddr"
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 8 && e.Len == 16:
				lhs = "ip6 saddr"
			}
			mask = nil
		case *expr.Ct:
			lhs = "ct ?"
			if e.Key == expr.CtKeySTATE {
				lhs = "ct state"
			}
			mask = nil
		case *expr.Bitwise:
			mask = e.Mask
		case *expr.Cmp:
			out = append(out, lhs+" "+value(lhs, e, mask))
		case *expr.Counter:
			out = append(out, "counter")
		case *expr.Masq:
			out = append(out, "masquerade")
		case *expr.Verdict:
			if e.Kind == expr.VerdictAccept {
				out = append(out, "accept")
			} else {
				out = append(out, fmt.Sprintf("verdict %d", e.Kind))
			}
		default:
			out = append(out, fmt.Sprintf("%T", e))
		}
	}
	return strings.Join(out, " ")
}

func value(lhs string, e *expr.Cmp, mask []byte) string {
	op := ""
	if e.Op == expr.CmpOpNeq {
		op = "!= "
	}
	switch lhs {
	case "meta nfproto":
		return op + map[byte]string{unix.NFPROTO_IPV4: "ipv4", unix.NFPROTO_IPV6: "ipv6"}[e.Data[0]]
	case "iifname", "oifname":
		return op + fmt.Sprintf("%q", string(bytes.TrimRight(e.Data, "\x00")))
	case "ip saddr", "ip6 saddr":
		a, _ := netip.AddrFromSlice(e.Data)
		bits := a.BitLen()
		if mask != nil {
			bits = 0
			for _, b := range mask {
				for ; b&0x80 != 0; b <<= 1 {
					bits++
				}
			}
		}
		return op + netip.PrefixFrom(a, bits).String()
	case "ct state":
		if e.Op == expr.CmpOpNeq && len(mask) == 4 && !slices.ContainsFunc(e.Data, func(b byte) bool { return b != 0 }) {
			m := binary.NativeEndian.Uint32(mask)
			var s []string
			for _, f := range []struct {
				bit  uint32
				name string
			}{{expr.CtStateBitESTABLISHED, "established"}, {expr.CtStateBitRELATED, "related"}, {expr.CtStateBitNEW, "new"}, {expr.CtStateBitINVALID, "invalid"}} {
				if m&f.bit != 0 {
					s = append(s, f.name)
				}
			}
			return strings.Join(s, ",")
		}
	}
	return fmt.Sprintf("%s%x/%x", op, e.Data, mask)
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// rulesOf are the rules Enable adds for a session of this process on dev,
// masquerading out of up0.
func rulesOf(dev string, clients ...string) []string {
	tag := session{PID: os.Getpid(), Start: proc.Self().Start, Dev: dev}.tag()
	return rulesTagged(tag, dev, clients...)
}

func rulesTagged(tag, dev string, clients ...string) []string {
	var out []string
	for _, c := range clients {
		p := netip.MustParsePrefix(c)
		fam, ip := "ipv4", "ip"
		if p.Addr().Is6() {
			fam, ip = "ipv6", "ip6"
		}
		out = append(out, fmt.Sprintf(`postrouting: meta nfproto %s %s saddr %s oifname "up0" counter masquerade # %s`, fam, ip, p, tag))
	}
	out = append(out,
		fmt.Sprintf(`forward: iifname %q counter accept # %s`, dev, tag),
		fmt.Sprintf(`forward: oifname %q ct state established,related counter accept # %s`, dev, tag),
	)
	return out
}

func sorted(parts ...[]string) []string {
	out := slices.Concat(parts...)
	slices.Sort(out)
	return out
}

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// nftText is what nft(8) shows of the table, if nft is installed.
func nftText(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		return ""
	}
	// The child inherits the network namespace of this (locked) thread.
	out, err := exec.Command("nft", "list", "table", "inet", Table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	return string(out)
}

func TestEnableClose(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, true, "tun0", "tun1")
		dir := t.TempDir()
		if sysctl(t, sysctlIPv4) != "0" || sysctl(t, sysctlIPv6) != "0" {
			t.Fatal("a new namespace forwards already")
		}

		g1, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		one := rulesOf("tun0", "198.18.0.2/32", "2001:db8:1::2/128")
		same(t, "after the first session", ruleset(t), sorted(one))
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "11" {
			t.Errorf("forwarding is %q, want on for both", got)
		}
		if text := nftText(t); text != "" {
			t.Logf("nft list table inet %s:\n%s", Table, text)
			for _, want := range []string{
				"type nat hook postrouting priority srcnat; policy accept;",
				"type filter hook forward priority filter; policy accept;",
				`ip saddr 198.18.0.2 oifname "up0" counter packets 0 bytes 0 masquerade comment "sshvpn nat `,
				`ip6 saddr 2001:db8:1::2 oifname "up0" counter packets 0 bytes 0 masquerade`,
				`iifname "tun0" counter packets 0 bytes 0 accept`,
				`oifname "tun0" ct state established,related counter packets 0 bytes 0 accept`,
			} {
				if !strings.Contains(text, want) {
					t.Errorf("nft does not show %q", want)
				}
			}
		}

		// Again: the same session's rules are replaced, not doubled.
		g1b, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "after enabling the first session again", ruleset(t), sorted(one))

		// A second session, IPv4 only, with a /30.
		g2, err := Enable(Config{Dev: "tun1", Clients: prefixes("198.18.0.5/30"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		two := rulesOf("tun1", "198.18.0.4/30")
		same(t, "with two sessions", ruleset(t), sorted(one, two))

		// The first goes: IPv6 forwarding, which only it needed, goes back.
		if err := g1.Close(); err != nil {
			t.Fatal(err)
		}
		if err := g1b.Close(); err != nil {
			t.Errorf("closing the same session twice: %v", err)
		}
		same(t, "after the first session left", ruleset(t), sorted(two))
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "10" {
			t.Errorf("forwarding is %q, want IPv4 on and IPv6 back off", got)
		}

		// The last goes: everything is as before.
		if err := g2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := g2.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
		}
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "00" {
			t.Errorf("forwarding is %q, want both back off", got)
		}
		if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state file left: %v", err)
		}
	})
}

func TestKeepsForwardingThatWasOn(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, false, "tun0")
		dir := t.TempDir()
		setSysctl(t, sysctlIPv4, "1")
		g, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := sysctl(t, sysctlIPv4); got != "1" {
			t.Errorf("ip_forward is %s after Close, want it left on as found", got)
		}
		if got := sysctl(t, sysctlIPv6); got != "0" {
			t.Errorf("IPv6 forwarding is %s, want untouched", got)
		}
	})
}

// A session whose process is killed leaves its rules and its claim; the
// next session to come or go clears them, and the values the dead session
// found are the ones put back.
func TestDeadSession(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, true, "tun0", "tun1")
		dir := t.TempDir()

		sleeper := exec.Command("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		dead := proc.Holder{PID: sleeper.Process.Pid, Start: proc.StartTime(sleeper.Process.Pid)}
		if _, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf, Holder: dead}); err != nil {
			sleeper.Process.Kill()
			sleeper.Wait()
			t.Fatal(err)
		}
		deadTag := session{PID: dead.PID, Start: dead.Start, Dev: "tun0"}.tag()
		same(t, "with the doomed session", ruleset(t), sorted(rulesTagged(deadTag, "tun0", "198.18.0.2/32", "2001:db8:1::2/128")))
		sleeper.Process.Kill()
		sleeper.Wait()

		g, err := Enable(Config{Dev: "tun1", Clients: prefixes("198.18.0.6/32"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "after the next session came", ruleset(t), sorted(rulesOf("tun1", "198.18.0.6/32")))
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "10" {
			t.Errorf("forwarding is %q, want IPv4 on and IPv6 (only the dead session's) back off", got)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
		}
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "00" {
			t.Errorf("forwarding is %q, want both back off", got)
		}
	})
}

func TestCleanup(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, false, "tun0")
		dir := t.TempDir()
		if err := Cleanup(dir, t.Logf); err != nil {
			t.Fatalf("Cleanup with nothing to do: %v", err)
		}
		// A pid no process has, start time and all.
		dead := proc.Holder{PID: 1 << 30, Start: "1"}
		if _, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: dir, Logf: t.Logf, Holder: dead}); err != nil {
			t.Fatal(err)
		}
		if sysctl(t, sysctlIPv4) != "1" || ruleset(t) == nil {
			t.Fatal("Enable did not enable")
		}
		if err := Cleanup(dir, t.Logf); err != nil {
			t.Fatal(err)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
		}
		if got := sysctl(t, sysctlIPv4); got != "0" {
			t.Errorf("ip_forward is %s, want back off", got)
		}
	})
}

func TestNoDefaultRoute(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, false, false, "tun0")
		dir := t.TempDir()
		_, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: dir, Logf: t.Logf})
		want := "nat: the server has no default IPv4 route; --nat needs one to send the client's traffic out"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}

		// IPv4 only: an IPv6 client has no way out.
		defaultVia(t, here(t), "198.51.100.2")
		_, err = Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf})
		want = "nat: the server has no default IPv6 route; --nat needs one to send the client's traffic out"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("a table was left: %q", rs)
		}
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "00" {
			t.Errorf("forwarding is %q, want untouched", got)
		}
	})
}

func TestBadConfig(t *testing.T) {
	netnstest.Run(t, func() {
		dir := t.TempDir()
		for _, cfg := range []Config{
			{Dev: "", Clients: prefixes("198.18.0.2/32"), StateDir: dir},
			{Dev: "a-name-far-too-long", Clients: prefixes("198.18.0.2/32"), StateDir: dir},
			{Dev: "tun0", StateDir: dir},
			{Dev: "tun0", Clients: []netip.Prefix{{}}, StateDir: dir},
			{Dev: "tun0", Clients: prefixes("198.18.0.2/32")},
		} {
			if _, err := Enable(cfg); err == nil || !strings.HasPrefix(err.Error(), "nat: ") {
				t.Errorf("Enable(%+v) = %v, want a nat error", cfg, err)
			}
		}
	})
}

// newNS makes a network namespace and comes back to back.
func newNS(t *testing.T, back netns.NsHandle) netns.NsHandle {
	t.Helper()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(back); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// in runs f in namespace ns, then comes back to back.
func in(t *testing.T, ns, back netns.NsHandle, f func()) {
	t.Helper()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(back); err != nil {
			panic(err) // the thread would be stuck in the wrong namespace
		}
	}()
	f()
}

// TestTraffic routes a client (namespace A) through the gateway (this
// namespace, B) to a host (namespace C) that has no route back to the
// client's addresses: only masquerading gets an answer back.
func TestTraffic(t *testing.T) {
	netnstest.Run(t, func() {
		b, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		a, c := newNS(t, b), newNS(t, b)
		hb := here(t)
		ha, err := netlink.NewHandleAt(a)
		if err != nil {
			t.Fatal(err)
		}
		defer ha.Close()
		hc, err := netlink.NewHandleAt(c)
		if err != nil {
			t.Fatal(err)
		}
		defer hc.Close()

		addLink(t, hb, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "b0"}, PeerName: "a0", PeerNamespace: netlink.NsFd(a)})
		addLink(t, hb, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "b1"}, PeerName: "c0", PeerNamespace: netlink.NsFd(c)})
		setUp(t, ha, "lo")
		setUp(t, hb, "lo")
		setUp(t, hc, "lo")
		setUp(t, ha, "a0", "198.18.0.1/15", "2001:db8:18::1/64")
		setUp(t, hb, "b0", "198.18.0.2/15", "2001:db8:18::2/64")
		setUp(t, hb, "b1", "198.51.100.1/24", "2001:db8:100::1/64")
		setUp(t, hc, "c0", "198.51.100.2/24", "2001:db8:100::2/64")
		defaultVia(t, ha, "198.18.0.2")
		defaultVia(t, ha, "2001:db8:18::2")
		defaultVia(t, hb, "198.51.100.2")
		defaultVia(t, hb, "2001:db8:100::2")
		// C has no default route, and no route to 198.18.0.0/15.

		type path struct {
			network    string
			server     string // C's address
			masquerade string // B's address on the way to C
		}
		paths := []path{
			{"udp4", "198.51.100.2", "198.51.100.1"},
			{"udp6", "2001:db8:100::2", "2001:db8:100::1"},
		}
		// Links come up (carrier, qdisc) a moment after they are set up;
		// before, packets wait for their neighbours or are lost.
		for _, l := range []struct {
			h    *netlink.Handle
			name string
		}{{ha, "a0"}, {hb, "b0"}, {hb, "b1"}, {hc, "c0"}} {
			for i := 0; ; i++ {
				link, err := l.h.LinkByName(l.name)
				if err != nil {
					t.Fatal(err)
				}
				if link.Attrs().OperState == netlink.OperUp {
					break
				}
				if i == 100 {
					t.Fatalf("%s is %v", l.name, link.Attrs().OperState)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}

		// Each neighbour learns the other's addresses, so that the tries
		// below do not wait on neighbour discovery.
		for _, hop := range []struct {
			from, to netns.NsHandle
			network  string
			addr     string
		}{
			{a, b, "udp4", "198.18.0.2"}, {a, b, "udp6", "2001:db8:18::2"},
			{b, a, "udp4", "198.18.0.1"}, {b, a, "udp6", "2001:db8:18::1"},
			{b, c, "udp4", "198.51.100.2"}, {b, c, "udp6", "2001:db8:100::2"},
			{c, b, "udp4", "198.51.100.1"}, {c, b, "udp6", "2001:db8:100::1"},
		} {
			var srv, cli *net.UDPConn
			in(t, hop.to, b, func() { srv, err = net.ListenUDP(hop.network, &net.UDPAddr{IP: net.ParseIP(hop.addr), Port: 6000}) })
			if err != nil {
				t.Fatal(err)
			}
			in(t, hop.from, b, func() { cli, err = net.DialUDP(hop.network, nil, &net.UDPAddr{IP: net.ParseIP(hop.addr), Port: 6000}) })
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for i := 0; i < 50 && !got; i++ {
				cli.Write([]byte("hello"))
				srv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				_, _, err := srv.ReadFromUDP(make([]byte, 16))
				got = err == nil
			}
			srv.Close()
			cli.Close()
			if !got {
				t.Fatalf("%s: no packet to %s across the link", hop.network, hop.addr)
			}
		}

		// try sends from A to C; it returns the source C saw, if C got
		// it, and whether C's answer came back. Every try has a port of
		// its own, so that a straggler of an earlier one cannot pass for
		// it.
		port := 7000
		try := func(p path, arrive, answer time.Duration) (src netip.Addr, answered bool) {
			t.Helper()
			port++
			var srv, cli *net.UDPConn
			in(t, c, b, func() {
				srv, err = net.ListenUDP(p.network, &net.UDPAddr{IP: net.ParseIP(p.server), Port: port})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			in(t, a, b, func() {
				cli, err = net.DialUDP(p.network, nil, &net.UDPAddr{IP: net.ParseIP(p.server), Port: port})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			if _, err := cli.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			srv.SetReadDeadline(time.Now().Add(arrive))
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "ping" {
				return netip.Addr{}, false
			}
			srv.WriteToUDPAddrPort([]byte("pong"), from)
			cli.SetReadDeadline(time.Now().Add(answer))
			n, err = cli.Read(buf)
			return from.Addr().Unmap(), err == nil && string(buf[:n]) == "pong"
		}

		// Without the gateway, B does not forward.
		for _, p := range paths {
			if src, _ := try(p, 300*time.Millisecond, 0); src.IsValid() {
				t.Fatalf("%s: C got a packet from %s before the gateway was on", p.network, src)
			}
		}

		// Forwarding alone: C sees the client's own address, and cannot
		// answer it.
		setSysctl(t, sysctlIPv4, "1")
		setSysctl(t, sysctlIPv6, "1")
		for _, p := range paths {
			src, answered := try(p, 3*time.Second, 300*time.Millisecond)
			if want := map[string]string{"udp4": "198.18.0.1", "udp6": "2001:db8:18::1"}[p.network]; src.String() != want || answered {
				t.Fatalf("%s, routed without the gateway: C saw the client as %v (want %s), answer came back: %v", p.network, src, want, answered)
			}
		}
		setSysctl(t, sysctlIPv4, "0")
		setSysctl(t, sysctlIPv6, "0")

		g, err := Enable(Config{Dev: "b0", Clients: prefixes("198.18.0.1/32", "2001:db8:18::1/128"), StateDir: t.TempDir(), Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			src, answered := try(p, 3*time.Second, 3*time.Second)
			if src.String() != p.masquerade || !answered {
				t.Errorf("%s: C saw the client as %v (want %s), answer came back: %v", p.network, src, p.masquerade, answered)
			}
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}

		// Closed: no forwarding again.
		for _, p := range paths {
			if src, _ := try(p, 300*time.Millisecond, 0); src.IsValid() {
				t.Errorf("%s: C got a packet from %s after the gateway closed", p.network, src)
			}
		}
	})
}

// Close works from another network namespace than Enable's.
func TestCloseElsewhere(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, false, "tun0")
		home, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer home.Close()
		g, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: t.TempDir(), Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		other := newNS(t, home)
		in(t, other, home, func() {
			if err := g.Close(); err != nil {
				t.Error(err)
			}
			now, err := netns.Get()
			if err != nil {
				t.Fatal(err)
			}
			defer now.Close()
			if !now.Equal(other) {
				t.Error("Close left the thread in another namespace")
			}
		})
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
		}
		if got := sysctl(t, sysctlIPv4); got != "0" {
			t.Errorf("ip_forward is %s, want back off", got)
		}
	})
}
