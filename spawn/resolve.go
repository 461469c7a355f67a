package spawn

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// ServerAddr returns the address ssh will connect to for o.Destination, as
// "ssh -G" reports it after applying the configuration (HostName, the first
// ProxyJump host), resolved to an IP address. It cannot see through a
// ProxyCommand, and says so.
func (o Options) ServerAddr(ctx context.Context) (netip.Addr, error) {
	return o.serverAddr(ctx, o.Destination, 0)
}

func (o Options) serverAddr(ctx context.Context, dest string, depth int) (netip.Addr, error) {
	if depth > 4 {
		return netip.Addr{}, fmt.Errorf("spawn: ProxyJump chain too long at %q", dest)
	}
	argv := append([]string(nil), o.SSH...)
	if len(argv) == 0 {
		argv = []string{"ssh"}
	}
	argv = append(argv, "-G", dest)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("spawn: %s -G %s: %w", argv[0], dest, err)
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
		first, _, _ := strings.Cut(pj, ",")
		first = strings.TrimPrefix(first, "ssh://")
		return o.serverAddr(ctx, first, depth+1)
	}
	host := cfg["hostname"]
	if host == "" {
		return netip.Addr{}, fmt.Errorf("spawn: %s -G %s printed no hostname", argv[0], dest)
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("spawn: resolving %s: %v", host, err)
	}
	return addrs[0].Unmap(), nil
}
