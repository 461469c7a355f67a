package stack

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sshvpn/sshvpn/internal/netnstest"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

// inNewNetns runs f in a network namespace of its own.
func inNewNetns(t *testing.T, f func()) { t.Helper(); netnstest.Run(t, f) }

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Errorf("ip %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// routes lists the IPv4 and IPv6 routes, less the link-local ones the
// kernel adds on its own schedule.
func routes(t *testing.T) string {
	var keep []string
	for _, line := range strings.Split(ip(t, "-4", "route")+ip(t, "-6", "route"), "\n") {
		if !strings.Contains(line, "fe80:") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// TestRoutesOnDevice: the routes stage with a real device and router puts up the routes,
// the pinned server route and the half-defaults; a reconnect with other
// addresses moves them; Close takes everything away.
func TestRoutesOnDevice(t *testing.T) {
	inNewNetns(t, func() {
		ip(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
		ip(t, "addr", "add", "192.0.2.1/24", "dev", "up0")
		ip(t, "link", "set", "up0", "up")
		ip(t, "link", "set", "up1", "up")
		ip(t, "route", "add", "default", "via", "192.0.2.254")
		before := routes(t)
		dev, err := tun.Open(tun.Config{Name: "lt0"})
		if err != nil {
			t.Error(err)
			return
		}
		link := New(dev.Name(), nil, &Routing{Router: router.New(dev, router.Options{}), DefaultRoute: true,
			Routes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
		server := netip.MustParseAddr("203.0.113.5")
		tn := policy.Tunnel{Mode: tun.ModeTUN, MTU: 1400,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30"), netip.MustParsePrefix("fd00:5::1/64")}}
		if err := link.Up(tn, server); err != nil {
			t.Error(err)
			return
		}
		during := routes(t)
		for _, want := range []string{"198.51.100.0/24 dev lt0", "0.0.0.0/1 dev lt0", "128.0.0.0/1 dev lt0",
			"203.0.113.5 via 192.0.2.254 dev up0", "::/1 dev lt0", "8000::/1 dev lt0"} {
			if !strings.Contains(during, want) {
				t.Errorf("route %q missing:\n%s", want, during)
			}
		}
		// A reconnect: the server assigns another address; the routes stay.
		tn.Addrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.5/30")}
		if err := link.Up(tn, server); err != nil {
			t.Error(err)
		}
		out := ip(t, "addr", "show", "dev", "lt0")
		if !strings.Contains(out, "198.18.0.5/30") || strings.Contains(out, "198.18.0.1/30") {
			t.Errorf("after a reconnect with another address:\n%s", out)
		}
		if got := routes(t); !strings.Contains(got, "0.0.0.0/1 dev lt0") || strings.Contains(got, "::/1 dev lt0") {
			t.Errorf("after a reconnect without IPv6, the routes are:\n%s", got)
		}
		link.Down()
		dev.Close()
		if got := routes(t); got != before {
			t.Errorf("routes differ:\nbefore:\n%s\nafter:\n%s", before, got)
		}
	})
}

// TestRoutesKeepAttachedDevice: on an admin's persistent device, Down
// removes the addresses and routes the session added and nothing else.
func TestRoutesKeepAttachedDevice(t *testing.T) {
	inNewNetns(t, func() {
		ip(t, "tuntap", "add", "dev", "keep0", "mode", "tun")
		ip(t, "addr", "add", "198.18.0.5/30", "dev", "keep0")
		dev, err := tun.Open(tun.Config{Name: "keep0"})
		if err != nil {
			t.Error(err)
			return
		}
		if !dev.Persistent() {
			t.Error("an admin's device is not reported persistent")
		}
		link := New(dev.Name(), nil, &Routing{Router: router.New(dev, router.Options{}),
			Routes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
		addrs := []netip.Prefix{netip.MustParsePrefix("198.18.0.5/30"), netip.MustParsePrefix("198.18.7.1/30")}
		if err := link.Up(policy.Tunnel{Mode: tun.ModeTUN, MTU: 1500, Addrs: addrs}, netip.Addr{}); err != nil {
			t.Error(err)
			return
		}
		link.Down()
		dev.Close()
		out := ip(t, "addr", "show", "dev", "keep0") + ip(t, "route")
		if !strings.Contains(out, "198.18.0.5/30") {
			t.Errorf("the admin's address went:\n%s", out)
		}
		if strings.Contains(out, "198.18.7.1") || strings.Contains(out, "198.51.100.0/24") {
			t.Errorf("the session's address or route stayed on the persistent device:\n%s", out)
		}
	})
}

// TestRoutesBlockUntunneled: an IPv4-only tunnel with --default-route
// blocks IPv6 with unreachable routes that carry sshvpn's protocol and are
// recorded as the session's (so that a killed session's are swept): IPv6
// beyond the local networks fails at once instead of taking the default
// route. A reconnect whose tunnel carries IPv6 turns the blocks into routes
// into the device, and back; Close takes everything away.
func TestRoutesBlockUntunneled(t *testing.T) {
	inNewNetns(t, func() {
		ip(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
		ip(t, "addr", "add", "192.0.2.1/24", "dev", "up0")
		ip(t, "addr", "add", "2001:db8:1::1/64", "dev", "up0", "nodad")
		ip(t, "link", "set", "up0", "up")
		ip(t, "link", "set", "up1", "up")
		ip(t, "route", "add", "default", "via", "192.0.2.254")
		ip(t, "-6", "route", "add", "default", "via", "2001:db8:1::ff")
		before := routes(t)
		// Whether a socket may send to an outside IPv6 address: connect
		// looks the route up, and sends nothing.
		outside := func() error {
			c, err := net.Dial("udp", "[2001:db8:ff::1]:9")
			if err == nil {
				c.Close()
			}
			return err
		}
		if err := outside(); err != nil {
			t.Errorf("before the tunnel, IPv6 has no way out (the test needs one): %v", err)
			return
		}
		dev, err := tun.Open(tun.Config{Name: "lb0"})
		if err != nil {
			t.Error(err)
			return
		}
		var recorded []router.Route
		link := New(dev.Name(), nil, &Routing{Router: router.New(dev, router.Options{Record: func(rs []router.Route) { recorded = rs }}),
			DefaultRoute: true})
		defer func() { link.Down(); dev.Close() }()
		server := netip.MustParseAddr("192.0.2.2")
		v4 := policy.Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30")}}
		both := v4
		both.Addrs = append(both.Addrs, netip.MustParsePrefix("fd00:5::1/64"))
		blocks := []router.Route{{Dst: netip.MustParsePrefix("::/1"), Unreachable: true}, {Dst: netip.MustParsePrefix("8000::/1"), Unreachable: true}}
		blocked := func(when string) {
			t.Helper()
			got := ip(t, "-6", "route", "show", "proto", "115")
			for _, want := range []string{"unreachable ::/1", "unreachable 8000::/1"} {
				if !strings.Contains(got, want) {
					t.Errorf("%s: no %q among sshvpn's IPv6 routes:\n%s", when, want, got)
				}
			}
			if strings.Contains(got, "::/1 dev lb0") {
				t.Errorf("%s: IPv6 goes into an IPv4-only tunnel:\n%s", when, got)
			}
			if err := outside(); !errors.Is(err, syscall.EHOSTUNREACH) {
				t.Errorf("%s: a socket to an outside IPv6 address: %v, want no route to host", when, err)
			}
			ours, err := router.ListRoutes(router.RouteProtocol)
			for _, b := range blocks {
				if !slices.Contains(recorded, b) || !slices.Contains(ours, b) {
					t.Errorf("%s: %v recorded %v, listed as sshvpn's %v (%v); want both", when, b, slices.Contains(recorded, b), slices.Contains(ours, b), err)
				}
			}
		}
		if err := link.Up(v4, server); err != nil {
			t.Error(err)
			return
		}
		blocked("an IPv4-only tunnel")
		if err := link.Up(both, server); err != nil {
			t.Error(err)
			return
		}
		if got := routes(t); strings.Contains(got, "unreachable") || !strings.Contains(got, "::/1 dev lb0") || !strings.Contains(got, "8000::/1 dev lb0") {
			t.Errorf("after a reconnect with IPv6, the routes are:\n%s", got)
		}
		if err := outside(); err != nil {
			t.Errorf("with IPv6 in the tunnel: %v", err)
		}
		if err := link.Up(v4, server); err != nil {
			t.Error(err)
			return
		}
		blocked("a reconnect without IPv6")
		link.Down()
		dev.Close()
		if got := routes(t); got != before {
			t.Errorf("routes differ:\nbefore:\n%s\nafter:\n%s", before, got)
		}
		if len(recorded) != 0 {
			t.Errorf("after Close the record holds %v", recorded)
		}
		if err := outside(); err != nil {
			t.Errorf("after Close: %v", err)
		}
	})
}
