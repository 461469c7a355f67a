package stack

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/router/routertest"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestHooks: the up hook runs when the stack first comes up and the down
// hook when it goes down, not around every reconnect; with Rehook they run
// around reconnects too, with SSHVPN_SCRIPT_CONTEXT=restart.
func TestHooks(t *testing.T) {
	for _, rehook := range []bool{false, true} {
		dir := t.TempDir()
		log := dir + "/log"
		script := dir + "/hook.sh"
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$SSHVPN_SCRIPT_TYPE $SSHVPN_SCRIPT_CONTEXT\" >> "+log+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		link := New("tun0", nil, &Hooks{Rehook: rehook, Env: hook.Env{Side: "local"},
			Runner: &hook.Runner{Up: script, Down: script}})
		tn := policy.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
		for range 3 { // three connections
			if err := link.Up(tn, netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			link.Detached()
		}
		link.Down()
		b, _ := os.ReadFile(log)
		want := "up init\ndown init\n"
		if rehook {
			want = "up init\ndown restart\nup restart\ndown restart\nup restart\ndown restart\n"
		}
		if string(b) != want {
			t.Errorf("rehook %v: hooks ran\n%s\nwant\n%s", rehook, b, want)
		}
	}
}

// TestRoutesConfig: what the routes stage asks of its router, through the fake:
// the tunnel's addresses and routes, the half-defaults and the pinned
// server with --default-route, the server pinned when a route covers it, a
// new Config when a reconnect brings other addresses, and one Close.
func TestRoutesConfig(t *testing.T) {
	r := &routertest.Router{}
	link := New("tun0", nil, &Routing{Router: r, DefaultRoute: true,
		Routes: pfx("198.51.100.0/24")})
	server := mustAddr("203.0.113.5")
	tn := policy.Tunnel{Mode: "tun", MTU: 1400, Addrs: pfx("198.18.0.1/30"), PeerAddrs: pfx("198.18.0.2/30")}
	if err := link.Up(tn, server); err != nil {
		t.Fatal(err)
	}
	tn.Addrs = pfx("198.18.0.5/30", "fd00::5/64")
	if err := link.Up(tn, server); err != nil {
		t.Fatal(err)
	}
	link.Down()
	cfgs := r.Configs()
	if len(cfgs) != 2 || r.Closed() != 1 {
		t.Fatalf("%d Configs, %d Closes; want 2 and 1", len(cfgs), r.Closed())
	}
	first := cfgs[0]
	if first.MTU != 1400 || !slices.Equal(first.Addrs, pfx("198.18.0.1/30")) || first.Pin != server ||
		!slices.Equal(first.Routes, pfx("198.51.100.0/24", "0.0.0.0/1", "128.0.0.0/1")) {
		t.Errorf("first Config %+v", first)
	}
	if second := cfgs[1]; !slices.Equal(second.Addrs, tn.Addrs) || !slices.Contains(second.Routes, netip.MustParsePrefix("::/1")) {
		t.Errorf("after a reconnect with other addresses: %+v", second)
	}

	// Without --default-route, the server is pinned only when a route
	// covers it; a link without a known server pins nothing.
	r = &routertest.Router{}
	link = New("tun1", nil, &Routing{Router: r, Routes: pfx("203.0.113.0/24")})
	defer link.Down()
	if err := link.Up(policy.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.0.1/30")}, server); err != nil {
		t.Fatal(err)
	}
	if err := link.Up(policy.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.0.1/30")}, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if cfgs := r.Configs(); cfgs[0].Pin != server || cfgs[1].Pin.IsValid() {
		t.Errorf("pins %v, %v; want the covered server, then none", cfgs[0].Pin, cfgs[1].Pin)
	}
}

// TestRoutesBlocks: with --default-route, the family the tunnel
// has no address in is blocked (unreachable halves of its default route,
// with a warning that names --allow-untunneled, once per change), IPv6
// past an IPv4-only tunnel and IPv4 past an IPv6-only one; not with
// AllowUntunneled, not without DefaultRoute, not for a tunnel with both
// families or none.
func TestRoutesBlocks(t *testing.T) {
	server := mustAddr("203.0.113.5")
	v4, v6 := pfx("198.18.0.1/30"), pfx("fd00::1/64")
	block6, block4 := pfx("::/1", "8000::/1"), pfx("0.0.0.0/1", "128.0.0.0/1")
	for _, tt := range []struct {
		name          string
		cfg           Routing
		addrs         []netip.Prefix
		routes, block []netip.Prefix
	}{
		{"IPv4 only", Routing{DefaultRoute: true}, v4, block4, block6},
		{"IPv6 only", Routing{DefaultRoute: true}, v6, block6, block4},
		{"both", Routing{DefaultRoute: true}, slices.Concat(v4, v6), slices.Concat(block4, block6), nil},
		{"no address", Routing{DefaultRoute: true}, nil, nil, nil},
		{"allowed", Routing{DefaultRoute: true, AllowUntunneled: true}, v4, block4, nil},
		{"no default route", Routing{}, v4, nil, nil},
	} {
		var log bytes.Buffer
		r := &routertest.Router{}
		cfg := tt.cfg
		cfg.Router, cfg.Log = r, slog.New(slog.NewTextHandler(&log, nil))
		link := New("tun0", nil, &cfg)
		for range 2 { // a reconnect to the same tunnel
			if err := link.Up(policy.Tunnel{Mode: "tun", MTU: 1500, Addrs: tt.addrs}, server); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
		}
		link.Down()
		for i, c := range r.Configs() {
			if !slices.Equal(c.Routes, tt.routes) || !slices.Equal(c.Blocked, tt.block) {
				t.Errorf("%s: Config %d routes %v, blocked %v; want %v and %v", tt.name, i, c.Routes, c.Blocked, tt.routes, tt.block)
			}
		}
		warned := strings.Count(log.String(), "level=WARN")
		switch {
		case tt.block == nil && warned != 0:
			t.Errorf("%s: a warning with nothing blocked:\n%s", tt.name, &log)
		case tt.block != nil && warned != 1:
			t.Errorf("%s: %d warnings, want one:\n%s", tt.name, warned, &log)
		case tt.block != nil:
			fam := map[bool]string{true: "IPv4", false: "IPv6"}[tt.block[0].Addr().Is4()]
			for _, want := range []string{"the tunnel carries no " + fam, "blocks " + fam, "--allow-untunneled"} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("%s: %q not in the warning:\n%s", tt.name, want, &log)
				}
			}
		}
	}
}

// TestReadyAfterHooks: a stage after the hooks (the record, which tells
// systemd READY) comes after the up hook, and not at all when the
// hook fails (systemd must not hear READY for a tunnel that failed).
func TestReadyAfterHooks(t *testing.T) {
	dir := t.TempDir()
	log := dir + "/log"
	for _, tt := range []struct {
		script string
		want   string
	}{
		{"#!/bin/sh\necho hook >> " + log + "\n", "hook\nready\n"},
		{"#!/bin/sh\necho hook >> " + log + "\nexit 3\n", "hook\n"},
	} {
		os.Remove(log)
		script := dir + "/up.sh"
		if err := os.WriteFile(script, []byte(tt.script), 0o755); err != nil {
			t.Fatal(err)
		}
		link := New("tun0", nil, &Hooks{Env: hook.Env{Side: "local"}, Runner: &hook.Runner{Up: script}},
			Func{OnUp: func(*Conf) error {
				f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("ready\n")
				f.Close()
				return nil
			}})
		link.Up(policy.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}, netip.Addr{})
		link.Down()
		if b, _ := os.ReadFile(log); string(b) != tt.want {
			t.Errorf("%q: %q, want %q", tt.script, b, tt.want)
		}
	}
}
