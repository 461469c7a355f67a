package tunnel

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/router/routertest"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// TestLinkDropsWhileDetached: with no connection attached, what the link
// reads from its device is dropped and counted.
func TestLinkDropsWhileDetached(t *testing.T) {
	checkLeaks(t)
	dev := tuntest.New("tun0", 1500)
	link := NewLink(dev, LinkConfig{})
	defer link.Close()
	pkt := ipPacket(mustAddr("10.9.0.2"), mustAddr("10.9.0.1"), make([]byte, 100))
	for range 1000 {
		dev.Inbound <- pkt
	}
	if !eventuallyTrue(5*time.Second, func() bool { return link.Stats().DroppedDetached.Load() == 1000 }) {
		t.Fatalf("dropped %d of 1000 packets read while detached", link.Stats().DroppedDetached.Load())
	}
}

// fakeServer is a Dialer whose connections reach an in-process Serve, each
// over a socketpair, with a link of its own per session like sshvpn --remote.
type fakeServer struct {
	t      *testing.T
	cfg    ServerConfig
	dials  atomic.Int32
	tokens chan string // the resume token of each session
	devs   chan *tuntest.Device
	conns  chan net.Conn // the server's end of each connection
	fail   func(n int) error
	wg     sync.WaitGroup
}

func newFakeServer(t *testing.T, cfg ServerConfig) *fakeServer {
	s := &fakeServer{t: t, cfg: cfg, tokens: make(chan string, 200), devs: make(chan *tuntest.Device, 200), conns: make(chan net.Conn, 200)}
	t.Cleanup(s.wg.Wait)
	return s
}

func (s *fakeServer) Dial(ctx context.Context) (spawn.Conn, error) {
	n := int(s.dials.Add(1))
	if s.fail != nil {
		if err := s.fail(n); err != nil {
			return nil, err
		}
	}
	cc, sc := socketPair(s.t)
	cfg := s.cfg
	cfg.Logger = testLogger(s.t).With("side", "server")
	cfg.Admit = func(tn Tunnel) error { s.tokens <- tn.Resume; return nil }
	cfg.Open = func(Tunnel) (*Link, error) {
		dev := tuntest.New("server0", 1500)
		s.devs <- dev
		return NewLink(dev, LinkConfig{}), nil
	}
	s.conns <- sc
	s.wg.Add(1)
	go func() { defer s.wg.Done(); Serve(context.Background(), sc, cfg) }()
	return pipeConn{cc}, nil
}

// pipeConn is a spawn.Conn over an in-memory stream.
type pipeConn struct{ net.Conn }

func (pipeConn) PeerAddr(context.Context) (netip.Addr, error) {
	return netip.Addr{}, errors.New("in memory")
}
func (pipeConn) Err() error { return nil }

// TestReconnect: with Reconnect, a connection that dies is dialed again;
// the same link (the same device) carries the new one, with the same resume
// token, and packets flow again. 100 cycles leak no goroutines.
func TestReconnect(t *testing.T) {
	checkLeaks(t)
	srv := newFakeServer(t, ServerConfig{})
	o := newOpener("client0")
	cfg := clientConfig(t, o)
	ctx, cancel := context.WithCancel(t.Context())
	done := goErr(func() error {
		return Connect(ctx, srv, cfg, Reconnect{Enabled: true, Min: time.Millisecond, Max: 5 * time.Millisecond})
	})
	token := ""
	for i := range 100 {
		sdev := <-srv.devs
		if tok := <-srv.tokens; token == "" {
			token = tok
		} else if tok != token {
			t.Fatalf("connection %d came with another resume token", i)
		}
		// A packet from the client's kernel reaches the server's, once the
		// client is attached (what it reads before is dropped).
		pkt := ipPacket(mustAddr("10.9.0.2"), mustAddr("10.9.0.1"), []byte{byte(i)})
		got := false
		for try := 0; try < 200 && !got; try++ {
			o.dev.Inbound <- pkt
			select {
			case <-sdev.Outbound:
				got = true
			case <-time.After(10 * time.Millisecond):
			}
		}
		if !got {
			t.Fatalf("connection %d carries no packets", i)
		}
		// The connection dies under the client (ssh killed, say).
		(<-srv.conns).Close()
	}
	cancel()
	if err := wait(t, "Connect", done, 5*time.Second); err != nil {
		t.Errorf("Connect: %v", err)
	}
	if o.dev.Closed() {
		t.Error("Connect closed the link's device")
	}
	if n := srv.dials.Load(); n < 100 {
		t.Errorf("%d dials for 100 connections", n)
	}
	o.Link().Close()
	runtime.GC()
}

// TestReconnectGivesUp: a failure that another attempt cannot mend (the
// server's refusal) ends Connect at once; a passing one is retried until
// --reconnect-tries.
func TestReconnectGivesUp(t *testing.T) {
	checkLeaks(t)
	srv := newFakeServer(t, ServerConfig{Mode: "tap"})
	o := newOpener("client0")
	err := Connect(t.Context(), srv, clientConfig(t, o), Reconnect{Enabled: true, Min: time.Millisecond})
	var re *RemoteError
	if !errors.As(err, &re) || srv.dials.Load() != 1 {
		t.Errorf("Connect: %v after %d dials; want the refusal after one", err, srv.dials.Load())
	}

	srv = newFakeServer(t, ServerConfig{})
	srv.fail = func(int) error {
		return &spawn.ExitError{Status: 255, Message: "ssh: connect to host gw port 22: Connection refused"}
	}
	err = Connect(t.Context(), dialFails{srv}, clientConfig(t, newOpener("client1")), Reconnect{Enabled: true, Tries: 3, Min: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 failed attempts") || srv.dials.Load() != 3 {
		t.Errorf("Connect: %v after %d dials; want to give up after 3", err, srv.dials.Load())
	}
}

// dialFails turns a Dialer's error into a connection that fails when read,
// as a spawned ssh that cannot connect does.
type dialFails struct{ *fakeServer }

func (d dialFails) Dial(ctx context.Context) (spawn.Conn, error) {
	n := int(d.dials.Add(1))
	return failedConn{d.fail(n)}, nil
}

type failedConn struct{ err error }

func (c failedConn) Read([]byte) (int, error)                     { return 0, c.err }
func (c failedConn) Write(p []byte) (int, error)                  { return len(p), nil }
func (c failedConn) Close() error                                 { return nil }
func (c failedConn) PeerAddr(context.Context) (netip.Addr, error) { return netip.Addr{}, c.err }
func (c failedConn) Err() error                                   { return c.err }

// TestReconnectHangup: a hangup drops the connection and dials again at
// once.
func TestReconnectHangup(t *testing.T) {
	checkLeaks(t)
	srv := newFakeServer(t, ServerConfig{})
	hup := make(chan os.Signal)
	ctx, cancel := context.WithCancel(t.Context())
	done := goErr(func() error {
		return Connect(ctx, srv, clientConfig(t, newOpener("client0")), Reconnect{Enabled: true, Min: time.Hour, Hangup: hup})
	})
	<-srv.devs
	hup <- syscall.SIGHUP
	select {
	case <-srv.devs:
	case <-time.After(5 * time.Second):
		t.Fatal("no new connection after a hangup (the backoff is an hour)")
	}
	cancel()
	if err := wait(t, "Connect", done, 5*time.Second); err != nil {
		t.Errorf("Connect: %v", err)
	}
}

// TestLinkHooks: the up hook runs when the link first comes up and the down
// hook when it closes, not around every reconnect; with Rehook they run
// around reconnects too, with SSHVPN_SCRIPT_CONTEXT=restart.
func TestLinkHooks(t *testing.T) {
	for _, rehook := range []bool{false, true} {
		dir := t.TempDir()
		log := dir + "/log"
		script := dir + "/hook.sh"
		if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$SSHVPN_SCRIPT_TYPE $SSHVPN_SCRIPT_CONTEXT\" >> "+log+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		link := NewLink(tuntest.New("tun0", 1500), LinkConfig{Rehook: rehook, Env: hook.Env{Side: "local"},
			Hooks: &hook.Runner{Up: script, Down: script, Log: testLogger(t)}})
		tn := Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
		for range 3 { // three connections
			if err := link.Up(tn, netip.Addr{}); err != nil {
				t.Fatal(err)
			}
			link.Detached()
		}
		link.Close()
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

// TestLinkRouterConfig: what the link asks of its router, through the fake:
// the tunnel's addresses and routes, the half-defaults and the pinned
// server with --default-route, the server pinned when a route covers it, a
// new Config when a reconnect brings other addresses, and one Close.
func TestLinkRouterConfig(t *testing.T) {
	checkLeaks(t)
	r := &routertest.Router{}
	link := NewLink(tuntest.New("tun0", 1500), LinkConfig{Router: r, DefaultRoute: true,
		Routes: pfx("198.51.100.0/24")})
	server := mustAddr("203.0.113.5")
	tn := Tunnel{Mode: "tun", MTU: 1400, Addrs: pfx("198.18.0.1/30"), PeerAddrs: pfx("198.18.0.2/30")}
	if err := link.Up(tn, server); err != nil {
		t.Fatal(err)
	}
	tn.Addrs = pfx("198.18.0.5/30", "fd00::5/64")
	if err := link.Up(tn, server); err != nil {
		t.Fatal(err)
	}
	link.Close()
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
	link = NewLink(tuntest.New("tun1", 1500), LinkConfig{Router: r, Routes: pfx("203.0.113.0/24")})
	defer link.Close()
	if err := link.Up(Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.0.1/30")}, server); err != nil {
		t.Fatal(err)
	}
	if err := link.Up(Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.0.1/30")}, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if cfgs := r.Configs(); cfgs[0].Pin != server || cfgs[1].Pin.IsValid() {
		t.Errorf("pins %v, %v; want the covered server, then none", cfgs[0].Pin, cfgs[1].Pin)
	}
}

// TestLinkBlocksUntunneled: with --default-route, the family the tunnel
// has no address in is blocked (unreachable halves of its default route,
// with a warning that names --allow-untunneled, once per change), IPv6
// past an IPv4-only tunnel and IPv4 past an IPv6-only one; not with
// AllowUntunneled, not without DefaultRoute, not for a tunnel with both
// families or none.
func TestLinkBlocksUntunneled(t *testing.T) {
	server := mustAddr("203.0.113.5")
	v4, v6 := pfx("198.18.0.1/30"), pfx("fd00::1/64")
	block6, block4 := pfx("::/1", "8000::/1"), pfx("0.0.0.0/1", "128.0.0.0/1")
	for _, tt := range []struct {
		name          string
		cfg           LinkConfig
		addrs         []netip.Prefix
		routes, block []netip.Prefix
	}{
		{"IPv4 only", LinkConfig{DefaultRoute: true}, v4, block4, block6},
		{"IPv6 only", LinkConfig{DefaultRoute: true}, v6, block6, block4},
		{"both", LinkConfig{DefaultRoute: true}, slices.Concat(v4, v6), slices.Concat(block4, block6), nil},
		{"no address", LinkConfig{DefaultRoute: true}, nil, nil, nil},
		{"allowed", LinkConfig{DefaultRoute: true, AllowUntunneled: true}, v4, block4, nil},
		{"no default route", LinkConfig{}, v4, nil, nil},
	} {
		var log bytes.Buffer
		r := &routertest.Router{}
		cfg := tt.cfg
		cfg.Router, cfg.Logger = r, slog.New(slog.NewTextHandler(&log, nil))
		link := NewLink(tuntest.New("tun0", 1500), cfg)
		for range 2 { // a reconnect to the same tunnel
			if err := link.Up(Tunnel{Mode: "tun", MTU: 1500, Addrs: tt.addrs}, server); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
		}
		link.Close()
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

// TestLinkReady: OnReady comes after the up hook, and not at all when the
// hook fails (systemd must not hear READY for a tunnel that failed).
func TestLinkReady(t *testing.T) {
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
		link := NewLink(tuntest.New("tun0", 1500), LinkConfig{Env: hook.Env{Side: "local"},
			Hooks: &hook.Runner{Up: script, Log: testLogger(t)},
			OnReady: func(Tunnel) {
				f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
				f.WriteString("ready\n")
				f.Close()
			}})
		link.Up(Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}, netip.Addr{})
		link.Close()
		if b, _ := os.ReadFile(log); string(b) != tt.want {
			t.Errorf("%q: %q, want %q", tt.script, b, tt.want)
		}
	}
}
