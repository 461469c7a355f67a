package nat

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// raDefaults are the interfaces of the main table's IPv6 default routes
// that came from router advertisements, as far as they can be listed:
// they are only warned about.
func raDefaults(ns netns.NsHandle) []string {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil
	}
	var names []string
	for _, r := range routes {
		if r.Protocol != unix.RTPROT_RA || !isDefault(r) {
			continue
		}
		idx := []int{r.LinkIndex}
		for _, nh := range r.MultiPath {
			idx = append(idx, nh.LinkIndex)
		}
		for _, i := range idx {
			if i <= 0 {
				continue
			}
			if l, err := h.LinkByIndex(i); err == nil && !slices.Contains(names, l.Attrs().Name) {
				names = append(names, l.Attrs().Name)
			}
		}
	}
	return names
}

// isDefault reports whether r is a default route that sends packets out of
// an interface (not a blackhole, unreachable or prohibit route).
func isDefault(r netlink.Route) bool {
	if r.Type != 0 && r.Type != unix.RTN_UNICAST {
		return false
	}
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0 && r.Dst.IP.IsUnspecified()
}

var (
	table = &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}

	policyAccept = nftables.ChainPolicyAccept

	postrouting = &nftables.Chain{
		Name:     "postrouting",
		Table:    table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}
	forward = &nftables.Chain{
		Name:     "forward",
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &policyAccept,
	}
	// sessionsChain holds the sessions' forward rules; forward jumps to it
	// before its guards.
	sessionsChain = &nftables.Chain{Name: "sessions", Table: table}
)

// metaKeyOIFKIND is NFT_META_OIFKIND of the kernel's uapi (linux/netfilter/
// nf_tables.h), "meta oifkind" in nft(8): the rtnl kind of the output
// device, "tun" for tun and tap devices. nftables v0.3.0's expr does not
// name it.
//
// The kernel cannot tell the kind of a device that has none (a physical
// NIC, lo): there the expression ends the rule as not matching, whatever
// the comparison, so "meta oifkind != tun" would miss a server's real
// uplink. The rules test for "tun" and return instead.
const metaKeyOIFKIND expr.MetaKey = 27

// tagPrefix begins the comment of every rule of a session.
const tagPrefix = "sshvpn nat "

// guardTag is the comment of the guard of IP version fam.
func guardTag(fam int) string { return fmt.Sprintf("%sguard ipv%d", tagPrefix, fam) }

// tag is the comment that marks the rules of session s.
func (s session) tag() string { return fmt.Sprintf("%s%d %s %s", tagPrefix, s.PID, s.Start, s.Dev) }

// parseTag reads a tag; ok is false for a rule that is not a session's.
func parseTag(t string) (s session, ok bool) {
	rest, ok := strings.CutPrefix(t, tagPrefix)
	if !ok {
		return s, false
	}
	f := strings.Fields(rest)
	if len(f) != 3 {
		return s, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return s, false
	}
	return session{PID: pid, Start: f[1], Dev: f[2]}, true
}

// comment is the comment nft(8) shows for a rule: a userdata TLV of type 0.
func comment(udata []byte) string {
	for len(udata) >= 2 {
		typ, n := udata[0], int(udata[1])
		if len(udata) < 2+n {
			break
		}
		if typ == 0 {
			return strings.TrimRight(string(udata[2:2+n]), "\x00")
		}
		udata = udata[2+n:]
	}
	return ""
}

// userdata is the userdata of a rule with comment c, as nft(8) writes it.
func userdata(c string) []byte {
	b := append([]byte(c), 0)
	return append([]byte{0, byte(len(b))}, b...)
}

// sessionRules are the session's rules. In postrouting, per client prefix: what
// goes out of a tunnel device returns unchanged, anything else is
// masqueraded. In sessions: what comes in from the session's device
// towards a tunnel device returns (to forward's guards), anything else it
// sends is accepted, and so are the replies that go back out to it.
func sessionRules(id session, clients []netip.Prefix) []*nftables.Rule {
	ud := userdata(id.tag())
	var out []*nftables.Rule
	for _, p := range clients {
		tun := slices.Concat(saddr(p), toTunnel(), []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictReturn}})
		masq := slices.Concat(saddr(p), []expr.Any{&expr.Counter{}, &expr.Masq{}})
		out = append(out,
			&nftables.Rule{Table: table, Chain: postrouting, Exprs: tun, UserData: ud},
			&nftables.Rule{Table: table, Chain: postrouting, Exprs: masq, UserData: ud},
		)
	}
	tun := slices.Concat(ifname(expr.MetaKeyIIFNAME, id.Dev), toTunnel(), []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictReturn}})
	in := append(ifname(expr.MetaKeyIIFNAME, id.Dev), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})
	back := append(ifname(expr.MetaKeyOIFNAME, id.Dev),
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  make([]byte, 4),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
	return append(out,
		&nftables.Rule{Table: table, Chain: sessionsChain, Exprs: tun, UserData: ud},
		&nftables.Rule{Table: table, Chain: sessionsChain, Exprs: in, UserData: ud},
		&nftables.Rule{Table: table, Chain: sessionsChain, Exprs: back, UserData: ud},
	)
}

// jumpRule is forward's first rule: "jump sessions".
func jumpRule() *nftables.Rule {
	return &nftables.Rule{Table: table, Chain: forward, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: sessionsChain.Name}}}
}

// isJump reports whether r is jumpRule.
func isJump(r *nftables.Rule) bool {
	if len(r.Exprs) != 1 {
		return false
	}
	v, ok := r.Exprs[0].(*expr.Verdict)
	return ok && v.Kind == expr.VerdictJump && v.Chain == sessionsChain.Name
}

// guardRule drops, at the end of forward, every forwarded packet of IP
// version fam that no session accepted: "meta nfproto ipv4 drop".
func guardRule(fam int) *nftables.Rule {
	proto := byte(unix.NFPROTO_IPV4)
	if fam == 6 {
		proto = unix.NFPROTO_IPV6
	}
	return &nftables.Rule{Table: table, Chain: forward, UserData: userdata(guardTag(fam)), Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}}
}

// saddr matches the source address against p: "ip saddr p" or "ip6 saddr
// p", with the protocol check nft(8) puts before them in an inet table.
func saddr(p netip.Prefix) []expr.Any {
	proto, off := byte(unix.NFPROTO_IPV4), uint32(12)
	if p.Addr().Is6() {
		proto, off = unix.NFPROTO_IPV6, 8
	}
	addr := p.Addr().AsSlice()
	n := uint32(len(addr))
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
	if p.Bits() < int(n)*8 {
		mask := make([]byte, n)
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

// ifname matches the interface name of key (iifname, oifname) exactly.
func ifname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// toTunnel matches packets that go out of a tun or tap device: "meta
// oifkind tun".
func toTunnel() []expr.Any { return ifname(metaKeyOIFKIND, "tun") }

// syncRules makes the table what the live sessions and the guards need, in
// one transaction: the session's rules and those of sessions whose
// processes are gone are replaced with add, and forward's guards are those
// of the IP versions in guards (nil leaves them as they are). With no
// session's rule and no guard left, it deletes the table.
func syncRules(ns netns.NsHandle, id session, add []*nftables.Rule, guards map[int]bool, logf func(string, ...any)) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nat: nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nat: listing nftables tables: %w", err)
	}
	exists := slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == Table })
	if !exists && len(add) == 0 && !guards[4] && !guards[6] {
		return nil
	}

	var (
		del       []*nftables.Rule
		gone      = map[session]bool{}
		kept      = 0 // rules of live sessions (and of others) that stay
		haveJump  = false
		haveGuard = map[int]bool{}
	)
	if exists {
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return fmt.Errorf("nat: listing nftables chains: %w", err)
		}
		for _, ch := range chains {
			if ch.Table == nil || ch.Table.Name != Table {
				continue
			}
			rules, err := c.GetRules(table, ch)
			if err != nil {
				return fmt.Errorf("nat: listing the rules of chain %s: %w", ch.Name, err)
			}
			for _, r := range rules {
				r.Table, r.Chain = table, &nftables.Chain{Name: ch.Name, Table: table}
				tag := comment(r.UserData)
				if ch.Name == forward.Name && isJump(r) {
					haveJump = true
					continue
				}
				if fam := guardFamily(tag); ch.Name == forward.Name && fam != 0 {
					if guards != nil && !guards[fam] || haveGuard[fam] {
						del = append(del, r)
					} else {
						haveGuard[fam] = true
					}
					continue
				}
				s, ok := parseTag(tag)
				switch {
				case ok && s == id:
					del = append(del, r)
				case ok && !s.alive():
					gone[s] = true
					del = append(del, r)
				default:
					kept++ // a live session's, or not sshvpn's: it stays
				}
			}
		}
	}
	var addGuards []int
	for _, fam := range []int{4, 6} {
		if guards[fam] && !haveGuard[fam] {
			addGuards = append(addGuards, fam)
		}
	}
	final := guards
	if final == nil {
		final = haveGuard
	}
	drop := kept == 0 && len(add) == 0 && !final[4] && !final[6]

	if drop {
		c.DelTable(table)
	} else {
		c.AddTable(table)
		c.AddChain(postrouting)
		c.AddChain(forward)
		c.AddChain(sessionsChain)
		for _, r := range del {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("nat: %w", err)
			}
		}
		if !haveJump {
			c.InsertRule(jumpRule()) // first: the guards come after it
		}
		for _, fam := range addGuards {
			c.AddRule(guardRule(fam))
		}
		for _, r := range add {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nat: changing nftables table inet %s: %w", Table, err)
	}
	for s := range gone {
		logf("nat: removed the rules of session %s, whose process is gone", s)
	}
	for _, fam := range addGuards {
		logf("nat: IPv%d forwarding, which sshvpn turned on, carries only its NAT sessions' packets and their replies; the rest is dropped", fam)
	}
	if drop {
		logf("nat: deleted nftables table inet %s, no session uses it", Table)
	}
	return nil
}

// guardFamily is the IP version of the guard tagged t, or 0.
func guardFamily(t string) int {
	for _, fam := range []int{4, 6} {
		if t == guardTag(fam) {
			return fam
		}
	}
	return 0
}

// warnForwardDrop tells of forward chains of other tables that drop by
// default: nftables runs every base chain on the hook, and their drop
// stands over this table's accept.
func warnForwardDrop(ns netns.NsHandle, logf func(string, ...any)) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return
	}
	chains, err := c.ListChains()
	if err != nil {
		return
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward || ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		if ch.Table.Name == Table && ch.Table.Family == nftables.TableFamilyINet {
			continue
		}
		logf("nat: warning: chain %s of nftables table %s %s drops forwarded packets by default; unless it accepts the client's, they go nowhere",
			ch.Name, familyName(ch.Table.Family), ch.Table.Name)
	}
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return strconv.Itoa(int(f))
}

// warnRA tells, before IPv6 forwarding goes on, of interfaces whose IPv6
// default route comes from router advertisements, which a router ignores
// unless accept_ra is 2.
func warnRA(names []string, logf func(string, ...any)) {
	for _, name := range names {
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/accept_ra")
		if err != nil || strings.TrimSpace(string(b)) != "1" {
			continue
		}
		logf("nat: warning: the IPv6 default route via %s comes from router advertisements, which the kernel ignores once forwarding is on; set net.ipv6.conf.%s.accept_ra=2 to keep it", name, name)
	}
}

// tableExists reports whether the table exists in namespace ns.
func tableExists(ns netns.NsHandle) (bool, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == Table }), nil
}
