package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sshvpn/sshvpn/internal/text"
	"github.com/sshvpn/sshvpn/spawn"
)

// mistyped catches a destination that is really a mistyped command
// ("sshvpn stauts"), which would otherwise be taken for a host name and
// cost an ssh attempt: a word without '@', '.' or ':', close to the name of
// a command of four letters or more (one edit for short words, two for
// longer ones), that is neither a Host of the ssh configuration nor a name
// the resolver knows.
func mistyped(dest string, cmds []*kong.Node, known func(string) bool) error {
	if strings.ContainsAny(dest, "@.:") || len(dest) < 3 {
		return nil
	}
	for _, c := range cmds {
		if c.Hidden || c.Name == dest || len(c.Name) < 4 {
			continue
		}
		limit := 2
		if len(dest) <= 5 {
			limit = 1
		}
		// "stat" for "status": the start of a command's name.
		if d := text.Distance(dest, c.Name); d > 0 && d <= limit || len(dest) >= 3 && strings.HasPrefix(c.Name, dest) {
			if known != nil && known(dest) {
				return nil
			}
			return fmt.Errorf("%q is not a command; did you mean %q? (To connect to a host called %s, write \"sshvpn connect %s\".)", dest, c.Name, dest, dest)
		}
	}
	return nil
}

// argHint explains a command line that kong refused for an argument too
// many: a mistyped command ("sshvpn donw office"), or sshuttle's habit
// of subnets after the destination ("sshvpn root@server 0/0").
func argHint(args []string, err error, cmds []*kong.Node) string {
	if !strings.Contains(err.Error(), "unexpected argument") {
		return ""
	}
	var positional []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			positional = append(positional, a)
		}
	}
	if len(positional) == 0 {
		return ""
	}
	if e := mistyped(positional[0], cmds, nil); e != nil {
		return e.Error()
	}
	for _, w := range positional[1:] {
		if looksLikeSubnet(w) {
			if addr, bits, _ := strings.Cut(w, "/"); strings.Trim(bits, "0") == "" && strings.Trim(addr, "0.:") == "" {
				return fmt.Sprintf("%q looks like sshuttle's subnet for everything: sshvpn's is --default-route (and a network is --route CIDR).", w)
			}
			return fmt.Sprintf("%q looks like a subnet, as sshuttle takes them: sshvpn routes a network into the tunnel with --route CIDR, and everything with --default-route.", w)
		}
	}
	return ""
}

// looksLikeSubnet reports whether w is an address with a prefix length,
// in sshuttle's short forms too ("0/0", "10/8").
func looksLikeSubnet(w string) bool {
	addr, bits, ok := strings.Cut(w, "/")
	if !ok || addr == "" || bits == "" || strings.Trim(bits, "0123456789") != "" {
		return false
	}
	return strings.Trim(addr, "0123456789.") == "" || strings.Count(addr, ":") >= 2
}

// knownHost reports whether name is a Host of the ssh configuration (its
// HostName differs) or resolves.
func knownHost(sshConfig string) func(string) bool {
	return func(name string) bool {
		if cfg, err := spawn.ResolveSSHConfig(sshConfig, name); err == nil && cfg.HostName != name {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		return err == nil && len(addrs) > 0
	}
}

// flagHint explains flags that users of other tools reach for.
func flagHint(err error) string {
	msg := err.Error() + ","
	switch {
	case strings.HasPrefix(msg, "unknown flag -r,"), strings.HasPrefix(msg, "unknown flag --remote-host"):
		return "sshuttle's -r user@host is sshvpn's plain argument (sshvpn user@host), and its subnets are --route CIDR (0/0 is --default-route)."
	case strings.HasPrefix(msg, "unknown flag -w,"):
		return "ssh -w's tunnel is sshvpn's default: sshvpn user@host (--openssh-tun --native uses ssh -w's channel)."
	}
	return ""
}
