package nat

import (
	"cmp"
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

// uplink is an interface a default route goes out of.
type uplink struct {
	name   string
	metric int
	ra     bool // the route came from a router advertisement
}

// uplinks finds, for each IP version in fams, the interfaces of the default
// routes of the main table, best first.
func uplinks(ns netns.NsHandle, fams []int) (map[int][]uplink, error) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("nat: netlink: %w", err)
	}
	defer h.Close()
	out := map[int][]uplink{}
	for _, fam := range fams {
		family := netlink.FAMILY_V4
		if fam == 6 {
			family = netlink.FAMILY_V6
		}
		routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("nat: listing the IPv%d routes: %w", fam, err)
		}
		slices.SortStableFunc(routes, func(a, b netlink.Route) int { return cmp.Compare(a.Priority, b.Priority) })
		var ups []uplink
		for _, r := range routes {
			if !isDefault(r) {
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
				l, err := h.LinkByIndex(i)
				if err != nil {
					continue
				}
				name := l.Attrs().Name
				if !slices.ContainsFunc(ups, func(u uplink) bool { return u.name == name }) {
					ups = append(ups, uplink{name: name, metric: r.Priority, ra: r.Protocol == unix.RTPROT_RA})
				}
			}
		}
		if len(ups) == 0 {
			return nil, fmt.Errorf("nat: the server has no default IPv%d route; --nat needs one to send the client's traffic out", fam)
		}
		out[fam] = ups
	}
	return out, nil
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
)

// tagPrefix begins the comment of every rule of a session.
const tagPrefix = "sshvpn nat "

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

// rules are the session's rules: a masquerade per client prefix and uplink
// of its family, and the two forward rules.
func (g *Gateway) rules(up map[int][]uplink) []*nftables.Rule {
	ud := userdata(g.id.tag())
	var out []*nftables.Rule
	for _, p := range g.clients {
		fam := 4
		if p.Addr().Is6() {
			fam = 6
		}
		for _, u := range up[fam] {
			e := append(saddr(p), ifname(expr.MetaKeyOIFNAME, u.name)...)
			e = append(e, &expr.Counter{}, &expr.Masq{})
			out = append(out, &nftables.Rule{Table: table, Chain: postrouting, Exprs: e, UserData: ud})
		}
	}
	in := append(ifname(expr.MetaKeyIIFNAME, g.id.Dev), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})
	back := append(ifname(expr.MetaKeyOIFNAME, g.id.Dev),
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
	out = append(out,
		&nftables.Rule{Table: table, Chain: forward, Exprs: in, UserData: ud},
		&nftables.Rule{Table: table, Chain: forward, Exprs: back, UserData: ud},
	)
	return out
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

// syncRules replaces, in one transaction, the session's rules and those of
// sessions whose processes are gone with add. With nothing to add and no
// rule left, it deletes the table.
func (g *Gateway) syncRules(add []*nftables.Rule) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(g.ns)))
	if err != nil {
		return fmt.Errorf("nat: nftables: %w", err)
	}
	if len(add) > 0 {
		c.AddTable(table)
		c.AddChain(postrouting)
		c.AddChain(forward)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nat: creating nftables table inet %s: %w", Table, err)
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nat: listing nftables chains: %w", err)
	}
	chains = slices.DeleteFunc(chains, func(ch *nftables.Chain) bool { return ch.Table == nil || ch.Table.Name != Table })
	if len(chains) == 0 && len(add) == 0 {
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return fmt.Errorf("nat: listing nftables tables: %w", err)
		}
		if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == Table }) {
			return nil
		}
	}
	total := 0
	var del []*nftables.Rule
	gone := map[session]bool{}
	for _, ch := range chains {
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return fmt.Errorf("nat: listing the rules of chain %s: %w", ch.Name, err)
		}
		total += len(rules)
		for _, r := range rules {
			s, ok := parseTag(comment(r.UserData))
			if !ok {
				continue
			}
			if s != g.id && !s.alive() {
				gone[s] = true
			} else if s != g.id {
				continue
			}
			r.Table, r.Chain = table, &nftables.Chain{Name: ch.Name, Table: table}
			del = append(del, r)
		}
	}
	if len(add) == 0 && total == len(del) {
		c.DelTable(table)
	} else {
		for _, r := range del {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("nat: %w", err)
			}
		}
		for _, r := range add {
			c.AddRule(r)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nat: changing nftables table inet %s: %w", Table, err)
	}
	for s := range gone {
		g.logf("nat: removed the rules of session %s, whose process is gone", s)
	}
	if len(add) == 0 && total == len(del) {
		g.logf("nat: deleted nftables table inet %s, no session uses it", Table)
	}
	return nil
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

// warnRA tells, before IPv6 forwarding goes on, of uplinks whose default
// route comes from router advertisements that a router ignores unless
// accept_ra is 2.
func warnRA(ups []uplink, logf func(string, ...any)) {
	for _, u := range ups {
		if !u.ra {
			continue
		}
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + u.name + "/accept_ra")
		if err != nil || strings.TrimSpace(string(b)) != "1" {
			continue
		}
		logf("nat: warning: the IPv6 default route via %s comes from router advertisements, which the kernel ignores once forwarding is on; set net.ipv6.conf.%s.accept_ra=2 to keep it", u.name, u.name)
	}
}
