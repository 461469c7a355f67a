package router

import (
	"errors"
	"io/fs"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn/internal/netnstest"
	"github.com/sshvpn/sshvpn/tun"
)

// inNewNetns runs f in a network namespace of its own.
func inNewNetns(t *testing.T, f func()) { t.Helper(); netnstest.Run(t, f) }

func TestOpenConfigureRoute(t *testing.T) {
	inNewNetns(t, func() {
		dev, err := tun.Open(tun.Config{Name: "tt0", Mode: tun.ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		addrs := []netip.Prefix{netip.MustParsePrefix("198.18.40.1/30"), netip.MustParsePrefix("2001:2:40::1/64")}
		if added, err := Configure(dev.Name(), Setup{MTU: 1400, Addrs: addrs}); err != nil || len(added) != 2 {
			t.Errorf("Configure: added %v, %v", added, err)
			return
		}
		// Configuring again changes nothing and is no error.
		if added, err := Configure(dev.Name(), Setup{MTU: 1400, Addrs: addrs}); err != nil || len(added) != 0 {
			t.Errorf("second Configure: added %v, %v; want nothing", added, err)
		}
		if dev.MTU() != 1400 {
			t.Errorf("MTU %d, want 1400", dev.MTU())
		}
		out, _ := exec.Command("ip", "addr", "show", "dev", "tt0").CombinedOutput()
		for _, want := range []string{"198.18.40.1/30", "2001:2:40::1/64", "mtu 1400", ",UP"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%q missing from:\n%s", want, out)
			}
		}
		r := Route{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "tt0"}
		if err := AddRoute(r); err != nil {
			t.Error(err)
		}
		if err := AddRoute(r); !errors.Is(err, fs.ErrExist) {
			t.Errorf("adding the route twice: %v, want fs.ErrExist", err)
		}
		if got, err := RouteTo(netip.MustParseAddr("198.51.100.7")); err != nil || got.Dev != "tt0" {
			t.Errorf("RouteTo: %+v, %v; want dev tt0", got, err)
		}
		if err := DelRoute(r); err != nil {
			t.Error(err)
		}
		if err := DelRoute(r); err != nil {
			t.Errorf("removing a route that is gone: %v", err)
		}
		if err := DelAddrs(dev.Name(), addrs); err != nil {
			t.Error(err)
		}
		out, _ = exec.Command("ip", "addr", "show", "dev", "tt0").CombinedOutput()
		if strings.Contains(string(out), "198.18.40.1") || strings.Contains(string(out), "2001:2:40::1") {
			t.Errorf("DelAddrs left addresses:\n%s", out)
		}
	})
}

// TestNetsAndMarkedRoutes: Nets lists every interface's addresses with their
// prefix lengths, routes AddRoute adds carry RouteProtocol and Routes finds
// them, and DelRoute never removes a route sshvpn did not add.
func TestNetsAndMarkedRoutes(t *testing.T) {
	inNewNetns(t, func() {
		dev, err := tun.Open(tun.Config{Name: "tn0", Mode: tun.ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		if _, err := Configure("tn0", Setup{Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.41.1/30")}}); err != nil {
			t.Error(err)
			return
		}
		nets, err := Nets()
		if err != nil {
			t.Error(err)
			return
		}
		found := false
		for _, n := range nets {
			if n.Prefix.String() == "198.18.41.1/30" && n.Dev == "tn0" {
				found = true
			}
		}
		if !found {
			t.Errorf("Nets = %v, want 198.18.41.1/30 on tn0", nets)
		}
		ours := Route{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "tn0"}
		if err := AddRoute(ours); err != nil {
			t.Error(err)
			return
		}
		if out, err := exec.Command("ip", "route", "add", "203.0.113.0/24", "dev", "tn0").CombinedOutput(); err != nil {
			t.Errorf("ip route add: %v %s", err, out)
			return
		}
		rs, err := ListRoutes(RouteProtocol)
		if err != nil || len(rs) != 1 || rs[0] != ours {
			t.Errorf("ListRoutes(RouteProtocol) = %v, %v; want only %v", rs, err, ours)
		}
		out, _ := exec.Command("ip", "route", "show", "proto", "115").CombinedOutput()
		if !strings.Contains(string(out), "198.51.100.0/24") {
			t.Errorf("ip route show proto 115:\n%s", out)
		}
		// Not ours: DelRoute leaves it.
		DelRoute(Route{Dst: netip.MustParsePrefix("203.0.113.0/24"), Dev: "tn0"})
		if out, _ := exec.Command("ip", "route", "show", "203.0.113.0/24").CombinedOutput(); !strings.Contains(string(out), "203.0.113.0/24") {
			t.Error("DelRoute removed a route sshvpn did not add")
		}
	})
}

// TestRouterSet: Set brings the device to a Config, a second Set with other
// addresses and routes replaces what the first added and nothing else, and
// Close removes the rest; a route that was there before is left alone.
func TestRouterSet(t *testing.T) {
	inNewNetns(t, func() {
		exec.Command("ip", "link", "set", "lo", "up").Run()
		exec.Command("ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan1").Run()
		exec.Command("ip", "link", "set", "wan1", "up").Run()
		exec.Command("ip", "addr", "add", "192.0.2.1/24", "dev", "wan0").Run()
		exec.Command("ip", "link", "set", "wan0", "up").Run()
		dev, err := tun.Open(tun.Config{Name: "rt0", Mode: tun.ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		// Someone else's route, to a network the tunnel will also ask for.
		if out, err := exec.Command("ip", "route", "add", "203.0.113.0/24", "dev", "wan0").CombinedOutput(); err != nil {
			t.Errorf("%v %s", err, out)
			return
		}
		var recorded []Route
		r := New(dev, Options{Record: func(rs []Route) { recorded = rs }})
		show := func() string {
			out, _ := exec.Command("sh", "-c", "ip -o addr show dev rt0; ip route show; ip -6 route show proto 115").CombinedOutput()
			return string(out)
		}
		err = r.Set(Config{MTU: 1400, Addrs: pfxs("198.18.50.1/30"), Routes: pfxs("198.51.100.0/24", "203.0.113.0/24"),
			Exclusive: pfxs("198.18.60.0/24"), Pin: netip.MustParseAddr("192.0.2.2")})
		if err != nil {
			t.Errorf("Set: %v", err)
			return
		}
		got := show()
		for _, want := range []string{"198.18.50.1/30", "198.51.100.0/24 dev rt0 proto 115", "198.18.60.0/24 dev rt0 proto 115",
			"192.0.2.2 dev wan0 proto 115", "203.0.113.0/24 dev wan0"} {
			if !strings.Contains(got, want) {
				t.Errorf("after the first Set, no %q in:\n%s", want, got)
			}
		}
		if len(recorded) != 3 {
			t.Errorf("recorded %v, want the 3 routes added", recorded)
		}
		// A reconnect that brings other addresses and routes.
		err = r.Set(Config{MTU: 1400, Addrs: pfxs("198.18.50.5/30"), Routes: pfxs("198.51.100.0/24"), Pin: netip.MustParseAddr("192.0.2.3")})
		if err != nil {
			t.Errorf("second Set: %v", err)
			return
		}
		got = show()
		for _, gone := range []string{"198.18.50.1/30", "198.18.60.0/24", "192.0.2.2 dev"} {
			if strings.Contains(got, gone) {
				t.Errorf("after the second Set, %q is still there:\n%s", gone, got)
			}
		}
		for _, want := range []string{"198.18.50.5/30", "198.51.100.0/24 dev rt0", "192.0.2.3 dev wan0 proto 115", "203.0.113.0/24 dev wan0"} {
			if !strings.Contains(got, want) {
				t.Errorf("after the second Set, no %q in:\n%s", want, got)
			}
		}
		// An exclusive route that exists already fails the Set, which
		// takes back what it added.
		err = r.Set(Config{MTU: 1400, Addrs: pfxs("198.18.50.5/30", "198.18.51.1/30"), Routes: pfxs("198.51.100.0/24"),
			Exclusive: pfxs("203.0.113.0/24"), Pin: netip.MustParseAddr("192.0.2.3")})
		if err == nil || !strings.Contains(err.Error(), "exists already") {
			t.Errorf("Set with a taken exclusive route: %v", err)
		}
		if got := show(); strings.Contains(got, "198.18.51.1") {
			t.Errorf("the failed Set left its address:\n%s", got)
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		got = show()
		if strings.Contains(got, "proto 115") || strings.Contains(got, "198.18.50.5") || !strings.Contains(got, "203.0.113.0/24 dev wan0") {
			t.Errorf("after Close:\n%s", got)
		}
		if len(recorded) != 0 {
			t.Errorf("after Close the record holds %v", recorded)
		}
	})
}

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// TestBlockedRoutes: Blocked networks get unreachable routes of sshvpn's
// protocol, both families, which Routes lists without a device (as the
// Router records them, so that a sweep tells a live session's from a
// leftover) and DelRoute removes. Two sessions that block the same network
// share the routes: the first to close leaves them to the other.
func TestBlockedRoutes(t *testing.T) {
	inNewNetns(t, func() {
		exec.Command("ip", "link", "set", "lo", "up").Run()
		var devs []tun.Device
		for _, name := range []string{"bl0", "bl1"} {
			dev, err := tun.Open(tun.Config{Name: name, Mode: tun.ModeTUN})
			if err != nil {
				t.Error(err)
				return
			}
			defer dev.Close()
			devs = append(devs, dev)
		}
		blocks := []Route{{Dst: netip.MustParsePrefix("::/1"), Unreachable: true}, {Dst: netip.MustParsePrefix("8000::/1"), Unreachable: true},
			{Dst: netip.MustParsePrefix("0.0.0.0/1"), Unreachable: true}}
		show := func() string {
			out, _ := exec.Command("sh", "-c", "ip route show proto 115; ip -6 route show proto 115").CombinedOutput()
			return string(out)
		}
		// The records of two sessions, and each one's view of the other.
		records := make([][]Route, 2)
		routers := make([]Router, 2)
		for i, dev := range devs {
			routers[i] = New(dev, Options{Record: func(rs []Route) { records[i] = rs },
				Shared: func(rt Route) bool { return slices.Contains(records[1-i], rt) }})
		}
		cfg := Config{Addrs: pfxs("198.18.70.1/30"), Routes: pfxs("128.0.0.0/1"), Blocked: pfxs("::/1", "8000::/1", "0.0.0.0/1")}
		if err := routers[0].Set(cfg); err != nil {
			t.Errorf("Set: %v", err)
			return
		}
		got := show()
		for _, want := range []string{"unreachable 0.0.0.0/1", "unreachable ::/1", "unreachable 8000::/1", "128.0.0.0/1 dev bl0"} {
			if !strings.Contains(got, want) {
				t.Errorf("no %q in:\n%s", want, got)
			}
		}
		listed, err := ListRoutes(RouteProtocol)
		for _, b := range blocks {
			if !slices.Contains(listed, b) || !slices.Contains(records[0], b) {
				t.Errorf("%v: listed %v (%v), recorded %v; want it in both", b, listed, err, records[0])
			}
		}
		// A second session blocks the same: it shares the routes.
		cfg.Addrs, cfg.Routes = pfxs("198.18.70.5/30"), nil
		if err := routers[1].Set(cfg); err != nil {
			t.Errorf("the second session's Set: %v", err)
			return
		}
		for _, b := range blocks {
			if !slices.Contains(records[1], b) {
				t.Errorf("the second session does not hold %v: %v", b, records[1])
			}
		}
		routers[0].Close()
		if got := show(); strings.Count(got, "unreachable") != 3 || strings.Contains(got, "bl0") {
			t.Errorf("after the first session closed:\n%s", got)
		}
		routers[1].Close()
		if got := show(); got != "" {
			t.Errorf("after both closed:\n%s", got)
		}
		// DelRoute removes what a killed session left, as a sweep finds it.
		for _, b := range blocks {
			if err := AddRoute(b); err != nil {
				t.Error(err)
			}
		}
		listed, _ = ListRoutes(RouteProtocol)
		for _, r := range listed {
			if err := DelRoute(r); err != nil {
				t.Error(err)
			}
		}
		if got := show(); got != "" {
			t.Errorf("after DelRoute of each listed route:\n%s", got)
		}
	})
}
