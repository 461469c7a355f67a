package main

import (
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/vishvananda/netns"
)

// inNewNetns runs f on a thread in a fresh network namespace.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("link tests need root in CI")
		}
		t.Skip("link tests need root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: Go retires the thread
		ns, err := netns.New()
		if err != nil {
			t.Errorf("new netns: %v", err)
			return
		}
		defer ns.Close()
		f()
	}()
	<-done
}

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

// TestLinkUpDown: up adds the routes, the pinned server route and the
// half-defaults; down removes what is still ours and leaves alone a new
// device that took the closed device's name.
func TestLinkUpDown(t *testing.T) {
	inNewNetns(t, func() {
		// An "uplink": one end of a veth pair (this kernel may lack dummy).
		ip(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
		ip(t, "addr", "add", "192.0.2.1/24", "dev", "up0")
		ip(t, "link", "set", "up0", "up")
		ip(t, "link", "set", "up1", "up")
		ip(t, "route", "add", "default", "via", "192.0.2.254")
		before := routes(t)

		f := linkFlags{Route: []string{"198.51.100.0/24"}}
		l, err := newLink(&f, tun.ModeTUN, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		l.defRoute, l.server = true, netip.MustParseAddr("203.0.113.5")
		dev, err := tun.Open(tun.Config{Name: "lt0"})
		if err != nil {
			t.Fatal(err)
		}
		tn := sshvpn.Tunnel{Mode: tun.ModeTUN, MTU: 1400,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30"), netip.MustParsePrefix("fd00:5::1/64")}}
		if err := l.up(dev, tn, tun.Setup{MTU: 1400, Addrs: tn.Addrs}, nil); err != nil {
			t.Fatal(err)
		}
		during := routes(t)
		for _, want := range []string{"198.51.100.0/24 dev lt0", "0.0.0.0/1 dev lt0", "128.0.0.0/1 dev lt0",
			"203.0.113.5 via 192.0.2.254 dev up0", "::/1 dev lt0", "8000::/1 dev lt0"} {
			if !strings.Contains(during, want) {
				t.Errorf("route %q missing:\n%s", want, during)
			}
		}

		// The session's device goes; a new one takes its name and a
		// route of its own before the old session's down runs.
		dev.Close()
		dev2, err := tun.Open(tun.Config{Name: "lt0"})
		if err != nil {
			t.Fatal(err)
		}
		defer dev2.Close()
		ip(t, "link", "set", "lt0", "up")
		ip(t, "route", "add", "198.51.100.0/24", "dev", "lt0")
		l.down()
		after := routes(t)
		if strings.Contains(after, "203.0.113.5") {
			t.Errorf("the pinned server route survived down:\n%s", after)
		}
		if !strings.Contains(after, "198.51.100.0/24 dev lt0") {
			t.Errorf("down removed the new device's route:\n%s", after)
		}
		dev2.Close()
		if got := routes(t); got != before {
			t.Errorf("routes differ:\nbefore:\n%s\nafter:\n%s", before, got)
		}
	})
}

// TestLinkDownKeepsAttachedDevice: on an admin's persistent device, down
// removes the addresses and routes the session added and nothing else.
func TestLinkDownKeepsAttachedDevice(t *testing.T) {
	inNewNetns(t, func() {
		ip(t, "tuntap", "add", "dev", "keep0", "mode", "tun")
		ip(t, "addr", "add", "198.18.0.5/30", "dev", "keep0")
		f := linkFlags{Route: []string{"198.51.100.0/24"}}
		l, err := newLink(&f, tun.ModeTUN, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		dev, err := tun.Open(tun.Config{Name: "keep0"})
		if err != nil {
			t.Fatal(err)
		}
		addrs := []netip.Prefix{netip.MustParsePrefix("198.18.0.5/30"), netip.MustParsePrefix("198.18.7.1/30")}
		tn := sshvpn.Tunnel{Mode: tun.ModeTUN, MTU: 1500, Addrs: addrs}
		if err := l.up(dev, tn, tun.Setup{Addrs: addrs}, nil); err != nil {
			t.Fatal(err)
		}
		l.down()
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
