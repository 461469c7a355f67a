package spawn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ServerAddr returns the address ssh will connect to for o.Destination, as
// "ssh -G" reports it after applying the configuration (HostName,
// AddressFamily, the first ProxyJump host), resolved to an IP address. It
// cannot see through a ProxyCommand, and says so.
//
// ServerAddr predicts; once ssh runs, Conn.PeerAddr tells the address it
// actually connected to, and should be preferred.
func (o Options) ServerAddr(ctx context.Context) (netip.Addr, error) {
	return o.serverAddr(ctx, net.DefaultResolver.LookupNetIP)
}

// lookupFunc is net.Resolver.LookupNetIP, replaced in tests.
type lookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (o Options) serverAddr(ctx context.Context, lookup lookupFunc) (netip.Addr, error) {
	if o.Destination == "" {
		return netip.Addr{}, errors.New("spawn: no destination")
	}
	if strings.HasPrefix(o.Destination, "-") {
		return netip.Addr{}, fmt.Errorf("spawn: destination %q starts with '-'; it would be taken as an ssh option", o.Destination)
	}
	argv := o.SSH
	if len(argv) == 0 {
		argv = []string{"ssh"}
	}
	return resolveHop(ctx, lookup, o.As, argv[0], argv[1:], nil, o.Destination, 0)
}

// maxJumps bounds the ProxyJump chain resolveHop follows through the
// configuration of each first hop.
const maxJumps = 4

// resolveHop runs "argv0 opts hopArgs -G dest" (as account as, if set)
// and resolves the host it reports, following ProxyJump to the first hop, the one ssh connects to.
func resolveHop(ctx context.Context, lookup lookupFunc, as *User, argv0 string, opts, hopArgs []string, dest string, depth int) (netip.Addr, error) {
	if depth > maxJumps {
		return netip.Addr{}, fmt.Errorf("spawn: ProxyJump chain too long at %q", dest)
	}
	args := append(append(append([]string(nil), opts...), hopArgs...), "-G", dest)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv0, args...)
	if as != nil { // the configuration ssh itself reads: the invoking user's
		if err := as.Apply(cmd); err != nil {
			return netip.Addr{}, err
		}
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(bytes.TrimSpace(ee.Stderr)) > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return netip.Addr{}, fmt.Errorf("spawn: %s %s: %w", argv0, strings.Join(args, " "), err)
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if _, seen := cfg[k]; !seen {
			cfg[k] = v
		}
	}
	if pc := cfg["proxycommand"]; pc != "" && pc != "none" {
		return netip.Addr{}, fmt.Errorf("spawn: %s is reached through a ProxyCommand; its address is unknown", dest)
	}
	if pj := cfg["proxyjump"]; pj != "" && pj != "none" {
		// ssh -J a,b connects to a first.
		first, _, _ := strings.Cut(pj, ",")
		user, host, port, err := parseJumpHost(first)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("spawn: ProxyJump of %s: %w", dest, err)
		}
		// Like the "ssh -W" that ssh runs for the jump: the hop's own
		// user and port, none of the options naming the destination.
		var hop []string
		if user != "" {
			hop = append(hop, "-l", user)
		}
		if port != "" {
			hop = append(hop, "-p", port)
		}
		return resolveHop(ctx, lookup, as, argv0, jumpOptions(opts), hop, host, depth+1)
	}
	host := cfg["hostname"]
	if host == "" {
		return netip.Addr{}, fmt.Errorf("spawn: %s -G %s printed no hostname", argv0, dest)
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.Unmap(), nil
	}
	network := "ip"
	switch cfg["addressfamily"] {
	case "inet":
		network = "ip4"
	case "inet6":
		network = "ip6"
	}
	addrs, err := lookup(ctx, network, host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("spawn: resolving %s (%s): %w", host, network, err)
	}
	return addrs[0].Unmap(), nil
}

// parseJumpHost splits a ProxyJump hop, [user@]host[:port],
// [user@][v6addr][:port] or ssh://[user@]host[:port], as ssh does.
func parseJumpHost(s string) (user, host, port string, err error) {
	hp := s
	uri := false
	if rest, ok := strings.CutPrefix(hp, "ssh://"); ok {
		hp, uri = strings.TrimSuffix(rest, "/"), true
	}
	if i := strings.LastIndexByte(hp, '@'); i >= 0 {
		user, hp = hp[:i], hp[i+1:]
		if user == "" {
			return "", "", "", fmt.Errorf("jump host %q: empty user name", s)
		}
	}
	switch {
	case strings.HasPrefix(hp, "["):
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", "", fmt.Errorf("jump host %q: missing ']'", s)
		}
		host, hp = hp[1:end], hp[end+1:]
		if hp != "" {
			var ok bool
			if port, ok = strings.CutPrefix(hp, ":"); !ok || port == "" {
				return "", "", "", fmt.Errorf("jump host %q: junk after ']'", s)
			}
		}
	case strings.Count(hp, ":") > 1 && !uri:
		// A bare IPv6 address takes no port.
		if _, perr := netip.ParseAddr(hp); perr != nil {
			return "", "", "", fmt.Errorf("jump host %q: put an IPv6 address in brackets", s)
		}
		host = hp
	default:
		var colon bool
		host, port, colon = strings.Cut(hp, ":")
		if colon && port == "" {
			return "", "", "", fmt.Errorf("jump host %q: empty port", s)
		}
	}
	if host == "" {
		return "", "", "", fmt.Errorf("jump host %q: no host", s)
	}
	if strings.HasPrefix(host, "-") {
		return "", "", "", fmt.Errorf("jump host %q starts with '-'", s)
	}
	if port != "" {
		if n, perr := strconv.ParseUint(port, 10, 16); perr != nil || n == 0 {
			return "", "", "", fmt.Errorf("jump host %q: bad port %q", s, port)
		}
	}
	return user, host, port, nil
}

// sshArgOptions are the ssh options that take an argument (OpenSSH 9's
// getopt string).
const sshArgOptions = "BbcDEeFIiJLlmOoPpQRSWw"

// jumpOptions returns ssh options for asking about a jump host: opts less
// those that name the destination or the way to it (-J, -p, -l, -4, -6 and
// their -o equivalents), which ssh does not pass on to the ssh it runs for
// the jump either. Passing -J again would make ssh report a jumphost loop.
func jumpOptions(opts []string) []string {
	var out []string
	for i := 0; i < len(opts); i++ {
		a := opts[i]
		if a == "--" {
			out = append(out, opts[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		// A group such as -4vJhost or -vp 2222, as getopt reads it.
		var flags []byte
		var withArg []string
		for j := 1; j < len(a); j++ {
			c := a[j]
			if strings.IndexByte(sshArgOptions, c) < 0 {
				if c != '4' && c != '6' {
					flags = append(flags, c)
				}
				continue
			}
			val := a[j+1:]
			if val == "" {
				if i+1 >= len(opts) {
					withArg = []string{"-" + string(c)} // ssh will complain
					break
				}
				i++
				val = opts[i]
			}
			if !namesDestination(c, val) {
				withArg = []string{"-" + string(c), val}
			}
			break
		}
		if len(flags) > 0 {
			out = append(out, "-"+string(flags))
		}
		out = append(out, withArg...)
	}
	return out
}

// namesDestination reports whether ssh option -c val concerns the
// destination rather than how ssh works.
func namesDestination(c byte, val string) bool {
	switch c {
	case 'J', 'p', 'l':
		return true
	case 'o':
		kw := strings.TrimLeft(val, " \t")
		if i := strings.IndexAny(kw, " \t="); i >= 0 {
			kw = kw[:i]
		}
		for _, k := range []string{"ProxyJump", "Port", "User", "HostName", "AddressFamily"} {
			if strings.EqualFold(kw, k) {
				return true
			}
		}
	}
	return false
}
