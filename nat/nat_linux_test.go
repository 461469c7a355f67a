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
// chain by chain (postrouting, forward, sessions), in their order; nil if
// the table does not exist.
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
	for _, ch := range []*nftables.Chain{postrouting, forward, sessionsChain} {
		rules, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatalf("rules of %s: %v", ch.Name, err)
		}
		for _, r := range rules {
			line := fmt.Sprintf("%s: %s", ch.Name, render(r.Exprs))
			if cm := comment(r.UserData); cm != "" {
				line += " # " + cm
			}
			out = append(out, line)
		}
	}
	return out
}

// render writes exprs the way nft(8) does, for the expressions sshvpn uses.
func render(exprs []expr.Any) string {
	var out []string
	lhs, mask := "", []byte(nil)
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			lhs = map[expr.MetaKey]string{expr.MetaKeyNFPROTO: "meta nfproto", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname", metaKeyOIFKIND: "meta oifkind"}[e.Key]
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
			switch e.Kind {
			case expr.VerdictAccept:
				out = append(out, "accept")
			case expr.VerdictDrop:
				out = append(out, "drop")
			case expr.VerdictReturn:
				out = append(out, "return")
			case expr.VerdictJump:
				out = append(out, "jump "+e.Chain)
			default:
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
	case "iifname", "oifname", "meta oifkind":
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

// wantRules are a session's rules in postrouting and in sessions.
type wantRules struct{ post, fwd []string }

// rulesOf are the rules Enable adds for a session of this process on dev.
func rulesOf(dev string, clients ...string) wantRules {
	tag := session{PID: os.Getpid(), Start: proc.Self().Start, Dev: dev}.tag()
	return rulesTagged(tag, dev, clients...)
}

func rulesTagged(tag, dev string, clients ...string) wantRules {
	var r wantRules
	for _, c := range clients {
		p := netip.MustParsePrefix(c)
		fam, ip := "ipv4", "ip"
		if p.Addr().Is6() {
			fam, ip = "ipv6", "ip6"
		}
		r.post = append(r.post,
			fmt.Sprintf(`postrouting: meta nfproto %s %s saddr %s meta oifkind "tun" counter return # %s`, fam, ip, p, tag),
			fmt.Sprintf(`postrouting: meta nfproto %s %s saddr %s counter masquerade # %s`, fam, ip, p, tag),
		)
	}
	r.fwd = []string{
		fmt.Sprintf(`sessions: iifname %q meta oifkind "tun" counter return # %s`, dev, tag),
		fmt.Sprintf(`sessions: iifname %q counter accept # %s`, dev, tag),
		fmt.Sprintf(`sessions: oifname %q ct state established,related counter accept # %s`, dev, tag),
	}
	return r
}

// tableOf is the whole table, as ruleset lists it, with the guards of IP
// versions guards and the rules of sessions ss, oldest first.
func tableOf(guards []int, ss ...wantRules) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.post...)
	}
	out = append(out, "forward: jump sessions")
	for _, g := range guards {
		out = append(out, fmt.Sprintf("forward: meta nfproto ipv%d counter drop # sshvpn nat guard ipv%d", g, g))
	}
	for _, s := range ss {
		out = append(out, s.fwd...)
	}
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
		// sshvpn turned forwarding on: the guards keep it to the session.
		same(t, "after the first session", ruleset(t), tableOf([]int{4, 6}, one))
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "11" {
			t.Errorf("forwarding is %q, want on for both", got)
		}
		if text := nftText(t); text != "" {
			t.Logf("nft list table inet %s:\n%s", Table, text)
			for _, want := range []string{
				"type nat hook postrouting priority srcnat; policy accept;",
				"type filter hook forward priority filter; policy accept;",
				`ip saddr 198.18.0.2 meta oifkind "tun" counter packets 0 bytes 0 return comment "sshvpn nat `,
				`ip saddr 198.18.0.2 counter packets 0 bytes 0 masquerade comment "sshvpn nat `,
				`ip6 saddr 2001:db8:1::2 meta oifkind "tun" counter packets 0 bytes 0 return comment "sshvpn nat `,
				`ip6 saddr 2001:db8:1::2 counter packets 0 bytes 0 masquerade comment "sshvpn nat `,
				"policy accept;\n\t\tjump sessions\n\t\tmeta nfproto ipv4 counter packets 0 bytes 0 drop comment \"sshvpn nat guard ipv4\"\n\t\tmeta nfproto ipv6 counter packets 0 bytes 0 drop comment \"sshvpn nat guard ipv6\"\n\t}",
				"chain sessions {\n\t\tiifname \"tun0\" meta oifkind \"tun\" counter packets 0 bytes 0 return comment",
				`iifname "tun0" counter packets 0 bytes 0 accept comment "sshvpn nat `,
				`oifname "tun0" ct state established,related counter packets 0 bytes 0 accept comment "sshvpn nat `,
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
		same(t, "after enabling the first session again", ruleset(t), tableOf([]int{4, 6}, one))

		// A second session, IPv4 only, with a /30: its rules come before
		// the guards too.
		g2, err := Enable(Config{Dev: "tun1", Clients: prefixes("198.18.0.5/30"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		two := rulesOf("tun1", "198.18.0.4/30")
		same(t, "with two sessions", ruleset(t), tableOf([]int{4, 6}, one, two))

		// The first goes: IPv6 forwarding, which only it needed, goes back,
		// and its guard with it.
		if err := g1.Close(); err != nil {
			t.Fatal(err)
		}
		if err := g1b.Close(); err != nil {
			t.Errorf("closing the same session twice: %v", err)
		}
		same(t, "after the first session left", ruleset(t), tableOf([]int{4}, two))
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

// Forwarding the admin had on stays theirs: no guard for that family (only
// for the one sshvpn turns on), and it stays on after the session.
func TestKeepsForwardingThatWasOn(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, false, "tun0", "tun1")
		dir := t.TempDir()
		setSysctl(t, sysctlIPv4, "1")
		g, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		one := rulesOf("tun0", "198.18.0.2/32")
		same(t, "with IPv4 forwarding on before", ruleset(t), tableOf(nil, one))

		// A dual-stack session: IPv6 forwarding was off, sshvpn turns it
		// on, and guards that family alone.
		g2, err := Enable(Config{Dev: "tun1", Clients: prefixes("198.18.0.6/32", "2001:db8:1::6/128"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		two := rulesOf("tun1", "198.18.0.6/32", "2001:db8:1::6/128")
		same(t, "with IPv6 turned on by sshvpn", ruleset(t), tableOf([]int{6}, one, two))
		if err := g2.Close(); err != nil {
			t.Fatal(err)
		}
		same(t, "after the dual-stack session", ruleset(t), tableOf(nil, one))

		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if got := sysctl(t, sysctlIPv4); got != "1" {
			t.Errorf("ip_forward is %s after Close, want it left on as found", got)
		}
		if got := sysctl(t, sysctlIPv6); got != "0" {
			t.Errorf("IPv6 forwarding is %s, want back off", got)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
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
		same(t, "with the doomed session", ruleset(t), tableOf([]int{4, 6}, rulesTagged(deadTag, "tun0", "198.18.0.2/32", "2001:db8:1::2/128")))
		sleeper.Process.Kill()
		sleeper.Wait()

		g, err := Enable(Config{Dev: "tun1", Clients: prefixes("198.18.0.6/32"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "after the next session came", ruleset(t), tableOf([]int{4}, rulesOf("tun1", "198.18.0.6/32")))
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

// Cleanup, which every session start calls, removes a dead session's rules,
// guards, sysctls and record, leaves a live session's alone, and makes
// nothing where there is nothing.
func TestCleanup(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, false, "tun0", "tun1")
		dir := t.TempDir()
		if err := Cleanup(dir, t.Logf); err != nil {
			t.Fatalf("Cleanup with nothing to do: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, lockFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Cleanup with nothing to do made a lock file: %v", err)
		}
		if err := Cleanup(filepath.Join(dir, "none"), t.Logf); err != nil {
			t.Errorf("Cleanup of a missing directory: %v", err)
		}

		// A pid no process has, start time and all.
		dead := proc.Holder{PID: 1 << 30, Start: "1"}
		if _, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf, Holder: dead}); err != nil {
			t.Fatal(err)
		}
		deadTag := session{PID: dead.PID, Start: dead.Start, Dev: "tun0"}.tag()
		deadRules := rulesTagged(deadTag, "tun0", "198.18.0.2/32", "2001:db8:1::2/128")
		same(t, "with the dead session", ruleset(t), tableOf([]int{4, 6}, deadRules))
		if sysctl(t, sysctlIPv4)+sysctl(t, sysctlIPv6) != "11" {
			t.Fatal("Enable did not enable")
		}
		if err := Cleanup(dir, t.Logf); err != nil {
			t.Fatal(err)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
		}
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "00" {
			t.Errorf("forwarding is %q, want both back off", got)
		}
		if _, err := os.Stat(filepath.Join(dir, stateFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the dead session's record is still there: %v", err)
		}

		// A live session and a dead one: Cleanup takes the dead one's and
		// what only it needed (IPv6), and leaves the live one's, guard and
		// all.
		g, err := Enable(Config{Dev: "tun1", Clients: prefixes("198.18.0.6/32"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf, Holder: dead}); err != nil {
			t.Fatal(err)
		}
		live := rulesOf("tun1", "198.18.0.6/32")
		same(t, "with a live and a dead session", ruleset(t), tableOf([]int{4, 6}, live, deadRules))
		if err := Cleanup(dir, t.Logf); err != nil {
			t.Fatal(err)
		}
		same(t, "after Cleanup", ruleset(t), tableOf([]int{4}, live))
		if got := sysctl(t, sysctlIPv4) + sysctl(t, sysctlIPv6); got != "10" {
			t.Errorf("forwarding is %q, want IPv4 on (the live session) and IPv6 back off", got)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}

		// A table left without a record (a Close cut short between the
		// two): Cleanup removes it.
		if _, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: dir, Logf: t.Logf, Holder: dead}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, stateFile)); err != nil {
			t.Fatal(err)
		}
		setSysctl(t, sysctlIPv4, "0")
		if err := Cleanup(dir, t.Logf); err != nil {
			t.Fatal(err)
		}
		if rs := ruleset(t); rs != nil {
			t.Errorf("the table is still there: %q", rs)
		}
	})
}

// Without a default route, or with the way to a network elsewhere, --nat
// works: the masquerade names no interface.
func TestNoDefaultRoute(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, false, false, "tun0")
		dir := t.TempDir()
		g, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatalf("Enable without a default route: %v", err)
		}
		same(t, "without a default route", ruleset(t), tableOf([]int{4, 6}, rulesOf("tun0", "198.18.0.2/32", "2001:db8:1::2/128")))
		if err := g.Close(); err != nil {
			t.Fatal(err)
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

// TestMasqueradeOnDeviceWithoutKind: a physical NIC has no rtnl kind, and
// "meta oifkind" cannot be read for it, which ends a rule as not matching
// whatever the comparison. lo, the one such device a test can use, stands
// for it: what the client sends out of it is masqueraded.
func TestMasqueradeOnDeviceWithoutKind(t *testing.T) {
	netnstest.Run(t, func() {
		setUp(t, here(t), "lo", "198.18.0.2/32", "198.18.0.3/32")
		g, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32"), StateDir: t.TempDir(), Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.0.3"), Port: 7000})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		cli, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.0.2")}, &net.UDPAddr{IP: net.ParseIP("198.18.0.3"), Port: 7000})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := srv.ReadFromUDP(make([]byte, 16)); err != nil {
			t.Fatalf("the datagram did not arrive: %v", err)
		}
		got := packets(t, postrouting)
		if got["masquerade"] == 0 || got["return"] != 0 {
			t.Errorf("postrouting counted %v; want the datagram masqueraded, not returned as if lo were a tunnel", got)
		}
	})
}

// packets counts the packets of chain ch's rules by their verdict or
// statement (masquerade, return, accept, drop).
func packets(t *testing.T, ch *nftables.Chain) map[string]uint64 {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.GetRules(table, ch)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, r := range rules {
		var n uint64
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				n = ctr.Packets
			}
		}
		f := strings.Fields(render(r.Exprs))
		out[f[len(f)-1]] += n
	}
	return out
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

// gwNet is a small network around the gateway, B (the calling thread's
// namespace), each namespace on a veth of its own to B:
//
//	A  a0 198.18.0.1/15   2001:db8:18::1/64   b0 198.18.0.2/15   2001:db8:18::2/64   the session's client
//	C  c0 198.51.100.2/24 2001:db8:100::2/64  b1 198.51.100.1/24 2001:db8:100::1/64  a LAN host
//	E  e0 203.0.113.1/24  2001:db8:113::1/64  b2 203.0.113.2/24  2001:db8:113::2/64  a host with no session
//	D  d0 192.0.2.2/24    2001:db8:200::2/64  b3 192.0.2.1/24    2001:db8:200::1/64  B's default route
//
// A and E route everything through B. C and D know only their own links:
// an answer to anything but B's own addresses goes nowhere.
type gwNet struct {
	t          *testing.T
	b          netns.NsHandle
	a, c, d, e netns.NsHandle
	port       int // the last port a try used
}

// A dest is an address to try, the namespace it is in, and the address of
// B that a masqueraded packet has on the way there.
type dest struct {
	network, addr string
	ns            netns.NsHandle
	masq          string
}

func (g *gwNet) toC() []dest {
	return []dest{{"udp4", "198.51.100.2", g.c, "198.51.100.1"}, {"udp6", "2001:db8:100::2", g.c, "2001:db8:100::1"}}
}

func (g *gwNet) toD() []dest {
	return []dest{{"udp4", "192.0.2.2", g.d, "192.0.2.1"}, {"udp6", "2001:db8:200::2", g.d, "2001:db8:200::1"}}
}

// client are A's addresses, the session's client.
var client = map[string]string{"udp4": "198.18.0.1", "udp6": "2001:db8:18::1"}

func newGwNet(t *testing.T) *gwNet {
	t.Helper()
	b, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	g := &gwNet{t: t, b: b, port: 7000}
	g.a, g.c, g.e, g.d = newNS(t, b), newNS(t, b), newNS(t, b), newNS(t, b)
	hb := here(t)
	setUp(t, hb, "lo")
	type end struct {
		ns     netns.NsHandle
		h      *netlink.Handle
		name   string
		addrs  []string
		bName  string
		bAddrs []string
	}
	var ends []end
	for _, l := range []struct {
		ns            netns.NsHandle
		name, bName   string
		addrs, bAddrs []string
	}{
		{g.a, "a0", "b0", []string{"198.18.0.1/15", "2001:db8:18::1/64"}, []string{"198.18.0.2/15", "2001:db8:18::2/64"}},
		{g.c, "c0", "b1", []string{"198.51.100.2/24", "2001:db8:100::2/64"}, []string{"198.51.100.1/24", "2001:db8:100::1/64"}},
		{g.e, "e0", "b2", []string{"203.0.113.1/24", "2001:db8:113::1/64"}, []string{"203.0.113.2/24", "2001:db8:113::2/64"}},
		{g.d, "d0", "b3", []string{"192.0.2.2/24", "2001:db8:200::2/64"}, []string{"192.0.2.1/24", "2001:db8:200::1/64"}},
	} {
		h, err := netlink.NewHandleAt(l.ns)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		addLink(t, hb, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.bName}, PeerName: l.name, PeerNamespace: netlink.NsFd(l.ns)})
		setUp(t, h, "lo")
		setUp(t, h, l.name, l.addrs...)
		setUp(t, hb, l.bName, l.bAddrs...)
		ends = append(ends, end{l.ns, h, l.name, l.addrs, l.bName, l.bAddrs})
	}
	defaultVia(t, ends[0].h, "198.18.0.2")
	defaultVia(t, ends[0].h, "2001:db8:18::2")
	defaultVia(t, ends[2].h, "203.0.113.2")
	defaultVia(t, ends[2].h, "2001:db8:113::2")
	defaultVia(t, hb, "192.0.2.2")
	defaultVia(t, hb, "2001:db8:200::2")

	// Links come up (carrier, qdisc) a moment after they are set up;
	// before, packets wait for their neighbours or are lost.
	for _, e := range ends {
		for _, l := range []struct {
			h    *netlink.Handle
			name string
		}{{e.h, e.name}, {hb, e.bName}} {
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
	}
	// Each neighbour learns the other's addresses, so that the tries
	// below do not wait on neighbour discovery.
	for _, e := range ends {
		for i, network := range []string{"udp4", "udp6"} {
			addr := func(p string) string { return strings.Split(p, "/")[0] }
			g.hello(e.ns, b, network, addr(e.bAddrs[i]))
			g.hello(b, e.ns, network, addr(e.addrs[i]))
		}
	}
	return g
}

// hello sends datagrams from namespace from to addr in namespace to until
// one arrives.
func (g *gwNet) hello(from, to netns.NsHandle, network, addr string) {
	t := g.t
	t.Helper()
	var srv, cli *net.UDPConn
	var err error
	in(t, to, g.b, func() { srv, err = net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(addr), Port: 6000}) })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	in(t, from, g.b, func() { cli, err = net.DialUDP(network, nil, &net.UDPAddr{IP: net.ParseIP(addr), Port: 6000}) })
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for range 50 {
		cli.Write([]byte("hello"))
		srv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := srv.ReadFromUDP(make([]byte, 16)); err == nil {
			return
		}
	}
	t.Fatalf("%s: no packet to %s across the link", network, addr)
}

// try sends a datagram from namespace from to d; it returns the source d
// saw, if it got it within arrive, and whether d's answer came back within
// answer. Every try has a port of its own, so that a straggler of an
// earlier one cannot pass for it.
func (g *gwNet) try(from netns.NsHandle, d dest, arrive, answer time.Duration) (src netip.Addr, answered bool) {
	t := g.t
	t.Helper()
	g.port++
	var srv, cli *net.UDPConn
	var err error
	in(t, d.ns, g.b, func() { srv, err = net.ListenUDP(d.network, &net.UDPAddr{IP: net.ParseIP(d.addr), Port: g.port}) })
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	in(t, from, g.b, func() { cli, err = net.DialUDP(d.network, nil, &net.UDPAddr{IP: net.ParseIP(d.addr), Port: g.port}) })
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(arrive))
	n, peer, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "ping" {
		return netip.Addr{}, false
	}
	srv.WriteToUDPAddrPort([]byte("pong"), peer)
	cli.SetReadDeadline(time.Now().Add(answer))
	n, err = cli.Read(buf)
	return peer.Addr().Unmap(), err == nil && string(buf[:n]) == "pong"
}

// arrives is the source d saw of a datagram from namespace from, if one
// arrived within a short wait: for what should not.
func (g *gwNet) arrives(from netns.NsHandle, d dest) netip.Addr {
	g.t.Helper()
	src, _ := g.try(from, d, 500*time.Millisecond, 0)
	return src
}

// masqueraded checks that a datagram from A reaches each of ds as from B's
// address on the way, and that the answer comes back.
func (g *gwNet) masqueraded(what string, ds ...dest) {
	g.t.Helper()
	for _, d := range ds {
		src, answered := g.try(g.a, d, 3*time.Second, 3*time.Second)
		if src.String() != d.masq || !answered {
			g.t.Errorf("%s: %s to %s: the host saw the client as %v (want %s), answer came back: %v", what, d.network, d.addr, src, d.masq, answered)
		}
	}
}

// tunnel opens tun device name in B, up, with routes to 100.64.0.0/24 and
// 2001:db8:64::/64: a tunnel of another session. It goes when the test
// ends.
func (g *gwNet) tunnel(name string) *os.File {
	t := g.t
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		t.Fatalf("TUNSETIFF %s: %v", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	h := here(t)
	setUp(t, h, name)
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"100.64.0.0/24", "2001:db8:64::/64"} {
		_, n, _ := net.ParseCIDR(dst)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: n}); err != nil {
			t.Fatalf("route to %s: %v", dst, err)
		}
	}
	return f
}

// toTunnel sends a datagram from A to addr, behind the tunnel f, and
// returns its source if it came out of f.
func (g *gwNet) toTunnel(f *os.File, network, addr string) netip.Addr {
	t := g.t
	t.Helper()
	g.port++
	var cli *net.UDPConn
	var err error
	in(t, g.a, g.b, func() { cli, err = net.DialUDP(network, nil, &net.UDPAddr{IP: net.ParseIP(addr), Port: g.port}) })
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	f.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		n, err := f.Read(buf)
		if err != nil {
			return netip.Addr{}
		}
		p := buf[:n]
		var src netip.Addr
		var udp []byte
		switch {
		case n >= 20 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP:
			src, udp = netip.AddrFrom4([4]byte(p[12:16])), p[int(p[0]&0xf)*4:]
		case n >= 40 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_UDP:
			src, udp = netip.AddrFrom16([16]byte(p[8:24])), p[40:]
		default:
			continue // the kernel's own (MLD, router solicitations)
		}
		if len(udp) >= 4 && int(binary.BigEndian.Uint16(udp[2:4])) == g.port {
			return src
		}
	}
}

// TestTraffic routes a client (A) through the gateway (B) to hosts that
// have no route back to it: C, on an interface of B that is not the one
// of its default route, and D, on that one. Only masquerading gets an
// answer back. While the session is up, a host without one (E) reaches
// nothing through B, and the client reaches no tunnel device.
func TestTraffic(t *testing.T) {
	netnstest.Run(t, func() {
		g := newGwNet(t)
		ds := append(g.toC(), g.toD()...)

		// Without the gateway, B does not forward.
		for _, d := range ds {
			if src := g.arrives(g.a, d); src.IsValid() {
				t.Fatalf("%s: %s got a packet from %s before the gateway was on", d.network, d.addr, src)
			}
		}

		// Forwarding alone: C sees the client's own address, and cannot
		// answer it.
		setSysctl(t, sysctlIPv4, "1")
		setSysctl(t, sysctlIPv6, "1")
		for _, d := range g.toC() {
			src, answered := g.try(g.a, d, 3*time.Second, 300*time.Millisecond)
			if src.String() != client[d.network] || answered {
				t.Fatalf("%s, routed without the gateway: C saw the client as %v (want %s), answer came back: %v", d.network, src, client[d.network], answered)
			}
		}
		setSysctl(t, sysctlIPv4, "0")
		setSysctl(t, sysctlIPv6, "0")

		gw, err := Enable(Config{Dev: "b0", Clients: prefixes("198.18.0.1/32", "2001:db8:18::1/128"), StateDir: t.TempDir(), Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		g.masqueraded("with the gateway", ds...)

		// The guard: E has no session, and gets nowhere through B.
		for _, d := range ds {
			if src := g.arrives(g.e, d); src.IsValid() {
				t.Errorf("%s: a host without a session reached %s through the gateway, as %s", d.network, d.addr, src)
			}
		}
		// Nor does the client get into another tunnel.
		tun := g.tunnel("tun9")
		for network, addr := range map[string]string{"udp4": "100.64.0.5", "udp6": "2001:db8:64::5"} {
			if src := g.toTunnel(tun, network, addr); src.IsValid() {
				t.Errorf("%s: the client reached a tunnel device through the gateway, as %s", network, src)
			}
		}
		if got := packets(t, forward); got["drop"] == 0 {
			t.Errorf("the guards dropped nothing: %v", got)
		}

		if err := gw.Close(); err != nil {
			t.Fatal(err)
		}
		// Closed: no forwarding again.
		for _, d := range ds {
			if src := g.arrives(g.a, d); src.IsValid() {
				t.Errorf("%s: %s got a packet from %s after the gateway closed", d.network, d.addr, src)
			}
		}
	})
}

// TestTrafficAdminForwards: where the admin had forwarding on, sshvpn adds
// no guard: a host without a session is forwarded as before (unmasqueraded,
// the admin's business), and the client's packets into a tunnel are
// forwarded but not masqueraded.
func TestTrafficAdminForwards(t *testing.T) {
	netnstest.Run(t, func() {
		g := newGwNet(t)
		setSysctl(t, sysctlIPv4, "1")
		setSysctl(t, sysctlIPv6, "1")
		gw, err := Enable(Config{Dev: "b0", Clients: prefixes("198.18.0.1/32", "2001:db8:18::1/128"), StateDir: t.TempDir(), Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer gw.Close()
		same(t, "the table", ruleset(t), tableOf(nil, rulesOf("b0", "198.18.0.1/32", "2001:db8:18::1/128")))
		g.masqueraded("with the admin's forwarding", g.toC()...)
		for _, d := range g.toC() {
			want := map[string]string{"udp4": "203.0.113.1", "udp6": "2001:db8:113::1"}[d.network]
			if src := g.arrives(g.e, d); src.String() != want {
				t.Errorf("%s: a host without a session, forwarded by the admin's choice, reached C as %v, want %s", d.network, src, want)
			}
		}
		tun := g.tunnel("tun9")
		for network, addr := range map[string]string{"udp4": "100.64.0.5", "udp6": "2001:db8:64::5"} {
			if src := g.toTunnel(tun, network, addr); src.String() != client[network] {
				t.Errorf("%s: into a tunnel the client's packet came out as from %v, want %s (not masqueraded)", network, src, client[network])
			}
		}
	})
}

// TestTrafficNoDefaultRoute: with no default route at all, the client
// still reaches C, masqueraded out of the interface the route to C takes.
func TestTrafficNoDefaultRoute(t *testing.T) {
	netnstest.Run(t, func() {
		g := newGwNet(t)
		h := here(t)
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := h.RouteList(nil, fam)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range routes {
				if isDefault(r) {
					if err := h.RouteDel(&r); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		gw, err := Enable(Config{Dev: "b0", Clients: prefixes("198.18.0.1/32", "2001:db8:18::1/128"), StateDir: t.TempDir(), Logf: t.Logf})
		if err != nil {
			t.Fatalf("Enable without a default route: %v", err)
		}
		defer gw.Close()
		g.masqueraded("without a default route", g.toC()...)
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

// TestForwardingFor: a session that is not a --nat session is told that a
// family sshvpn turned on for its --nat sessions does not forward (its
// guard drops that session's packets); a family the admin had on forwards.
func TestForwardingFor(t *testing.T) {
	netnstest.Run(t, func() {
		uplinkNS(t, true, true, "tun0")
		dir := t.TempDir()
		setSysctl(t, sysctlIPv4, "1") // the admin's
		setSysctl(t, sysctlIPv6, "0")
		if got := ForwardingFor(dir); !got["ipv4"] || got["ipv6"] {
			t.Errorf("before any --nat session: %v", got)
		}
		g, err := Enable(Config{Dev: "tun0", Clients: prefixes("198.18.0.2/32", "2001:db8:1::2/128"), StateDir: dir, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if got := Forwarding(); !got["ipv4"] || !got["ipv6"] {
			t.Errorf("the --nat session's view: %v, want both on", got)
		}
		if got := ForwardingFor(dir); !got["ipv4"] || got["ipv6"] {
			t.Errorf("another session's view: %v, want IPv4 (the admin's) on, IPv6 (guarded) off", got)
		}
	})
}
