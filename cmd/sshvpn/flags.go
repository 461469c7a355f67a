package main

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/policy"
)

// cidr is a netip.Prefix flag with an error message that says what it
// wants.
type cidr struct{ netip.Prefix }

func (c *cidr) UnmarshalText(b []byte) error {
	p, err := netip.ParsePrefix(string(b))
	if err != nil {
		return fmt.Errorf("%q: want an address with prefix length, such as 198.18.0.1/30 or fd00::1/64", b)
	}
	c.Prefix = p
	return nil
}

func (c cidr) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// prefixes unwraps cidr flags.
func prefixes(cs []cidr) []netip.Prefix {
	if len(cs) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(cs))
	for i, c := range cs {
		out[i] = c.Prefix
	}
	return out
}

// tunnelFlags are the flags both sides share.
type tunnelFlags struct {
	Dev      string `group:"device" placeholder:"NAME" help:"Device name (default: the kernel picks tunN)."`
	Addr     []cidr `placeholder:"CIDR" help:"This side's tunnel address with prefix length, IPv4 or IPv6; repeat for both."`
	PeerAddr []cidr `placeholder:"CIDR" help:"The other side's tunnel address; repeat for both families."`
	MTU      int    `group:"device" name:"mtu" help:"Tunnel MTU (default 1500; the server's --mtu wins)."`
}

// linkFlags set up the device beyond its addresses; both sides have them.
type linkFlags struct {
	Route       []cidr        `placeholder:"CIDR" help:"Route this network into the tunnel while it is up (IPv4 or IPv6; repeatable). Removed when the tunnel goes down."`
	Bridge      string        `group:"device" placeholder:"NAME" help:"tap mode: make the device a port of this existing Linux bridge."`
	MAC         string        `group:"device" name:"mac" placeholder:"ADDR" help:"tap mode: the device's MAC address (default: random)."`
	Up          string        `group:"hooks" placeholder:"SCRIPT" help:"Run SCRIPT once the link is up, with SSHVPN_* variables (see README, Hooks). If it fails, the tunnel does not come up."`
	Down        string        `group:"hooks" placeholder:"SCRIPT" help:"Run SCRIPT once when the tunnel goes down, whatever ends it (only if the link came up)."`
	HookTimeout time.Duration `group:"hooks" default:"30s" help:"Kill a hook that runs longer than this."`
	Offload     bool          `group:"device" default:"true" negatable:"" help:"tun mode: pass the kernel's segmentation and checksum offloads through the tunnel (64 KiB super-packets instead of MTU-sized ones), when both sides' kernels have them and neither side says --no-offload."`
}

// args renders the flags that differ from their defaults, for
// authorized-key.
func (f *linkFlags) args() []string {
	var a []string
	for _, r := range f.Route {
		a = append(a, "--route="+r.String())
	}
	for _, kv := range [][2]string{{"bridge", f.Bridge}, {"mac", f.MAC}, {"up", f.Up}, {"down", f.Down}} {
		if kv[1] != "" {
			a = append(a, "--"+kv[0]+"="+kv[1])
		}
	}
	if !f.Offload {
		a = append(a, "--no-offload")
	}
	if f.HookTimeout != 0 && f.HookTimeout != hook.DefaultTimeout {
		a = append(a, "--hook-timeout="+f.HookTimeout.String())
	}
	return a
}

// mac parses --mac and checks --bridge and --mac against the mode.
func (f *linkFlags) mac(tap bool) (net.HardwareAddr, error) {
	if !tap && (f.Bridge != "" || f.MAC != "") {
		return nil, fmt.Errorf("--bridge and --mac need --mode tap: a tun device carries IP packets, not Ethernet frames")
	}
	if f.MAC == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(f.MAC)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("--mac %q: want an Ethernet address such as 02:00:5e:10:00:01", f.MAC)
	}
	return mac, nil
}

// checkMTUFlag checks --mtu, 0 meaning unset, against the range the
// handshake accepts.
func checkMTUFlag(mtu int) error {
	if mtu == 0 {
		return nil
	}
	if err := policy.CheckMTU(mtu); err != nil {
		return fmt.Errorf("--mtu: %w", err)
	}
	return nil
}

// checkKeepalive refuses a dead-peer limit that keepalives cannot meet.
func checkKeepalive(keepalive, deadAfter time.Duration) error {
	if deadAfter <= keepalive {
		return fmt.Errorf("--dead-after %v must be longer than --keepalive %v, or every pause between pings looks like a dead peer", deadAfter, keepalive)
	}
	return nil
}
