package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/spawn/spawntest"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
	"github.com/sshvpn/sshvpn/tunnel"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

// server is the far end of the transport fake: each connection is served
// by tunnel.Serve with cfg, on a device of its own; it reports each
// session's resume token and device.
type server struct {
	cfg    tunnel.ServerConfig
	mu     sync.Mutex
	tokens []string
	devs   chan *tuntest.Device
}

func newServer(t *testing.T, cfg tunnel.ServerConfig) (*server, *spawntest.Dialer) {
	s := &server{cfg: cfg, devs: make(chan *tuntest.Device, 200)}
	d := &spawntest.Dialer{Serve: func(conn net.Conn) {
		cfg := s.cfg
		cfg.Admit = func(tn tunnel.Tunnel) error {
			s.mu.Lock()
			s.tokens = append(s.tokens, tn.Resume)
			s.mu.Unlock()
			return nil
		}
		cfg.Open = func(tunnel.Tunnel) (*tunnel.Link, error) {
			dev := tuntest.New("server0", 1500)
			s.devs <- dev
			return tunnel.NewLink(dev, tunnel.LinkConfig{}), nil
		}
		tunnel.Serve(context.Background(), conn, cfg)
	}}
	t.Cleanup(d.Wait)
	return s, d
}

// clientConfig is a client of 10.9.0.2/24 on dev, its link closed at the
// end of the test.
func clientConfig(t *testing.T, dev tun.Device) tunnel.ClientConfig {
	link := tunnel.NewLink(dev, tunnel.LinkConfig{})
	t.Cleanup(func() { link.Close() })
	return tunnel.ClientConfig{Mode: tun.ModeTUN, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24"), Link: link,
		Resume: strings.Repeat("r", framing.MinResume)}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestReconnect: with Reconnect, a connection that dies is dialed again;
// the same link (the same device) carries the new one, with the same
// resume token, until the context ends.
func TestReconnect(t *testing.T) {
	srv, d := newServer(t, tunnel.ServerConfig{})
	dev := tuntest.New("client0", 1500)
	cfg := clientConfig(t, dev)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- connect(ctx, framed{d}, cfg, Reconnect{Enabled: true, Min: time.Millisecond, Max: 5 * time.Millisecond}, discard())
	}()
	for i := range 20 {
		select {
		case <-srv.devs:
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d never came", i)
		}
		for deadline := time.Now().Add(5 * time.Second); cfg.Link.Ups() <= i; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("connection %d never brought the link up", i)
			}
		}
		d.Drop() // the connection dies under the client (ssh killed, say)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("connect: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connect did not return when cancelled")
	}
	if dev.Closed() {
		t.Error("the loop closed the link's device")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, tok := range srv.tokens {
		if tok != srv.tokens[0] {
			t.Fatalf("connection %d came with another resume token", i)
		}
	}
	if d.Dials() < 20 {
		t.Errorf("%d dials for 20 connections", d.Dials())
	}
}

// TestReconnectGivesUp: a failure that another attempt cannot mend (the
// server's refusal) ends the loop at once; a passing one is retried until
// --reconnect-tries.
func TestReconnectGivesUp(t *testing.T) {
	_, d := newServer(t, tunnel.ServerConfig{Mode: "tap"})
	err := connect(t.Context(), framed{d}, clientConfig(t, tuntest.New("client0", 1500)), Reconnect{Enabled: true, Min: time.Millisecond}, discard())
	var re *tunnel.RemoteError
	if !errors.As(err, &re) || d.Dials() != 1 {
		t.Errorf("connect: %v after %d dials; want the refusal after one", err, d.Dials())
	}

	_, d = newServer(t, tunnel.ServerConfig{})
	d.Fail = func(int) error {
		return &spawn.ExitError{Status: 255, Message: "ssh: connect to host gw port 22: Connection refused"}
	}
	err = connect(t.Context(), framed{d}, clientConfig(t, tuntest.New("client1", 1500)), Reconnect{Enabled: true, Tries: 3, Min: time.Millisecond}, discard())
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 failed attempts") || d.Dials() != 3 {
		t.Errorf("connect: %v after %d dials; want to give up after 3", err, d.Dials())
	}
}

// TestReconnectEnds: what another attempt cannot mend ends --reconnect at
// once, as the README says: authentication or a changed host key (ssh
// exits 255 with its message), sshvpn missing on the server (exit 127), a
// failing up hook (this side's own setup). A connection lost on the way
// is retried.
func TestReconnectEnds(t *testing.T) {
	for _, tt := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"authentication", &spawn.ExitError{Status: 255, Message: "root@gw: Permission denied (publickey)."}, false},
		{"changed host key", &spawn.ExitError{Status: 255, Message: "Host key verification failed."}, false},
		{"not installed", &spawn.ExitError{Status: 127, RemoteCommand: "sshvpn --remote"}, false},
		{"connection refused", &spawn.ExitError{Status: 255, Message: "ssh: connect to host gw port 22: Connection refused"}, true},
		{"connection lost", errors.New("read: connection reset by peer"), true},
	} {
		_, d := newServer(t, tunnel.ServerConfig{})
		d.Fail = func(int) error { return tt.err }
		connect(t.Context(), framed{d}, clientConfig(t, tuntest.New("client0", 1500)), Reconnect{Enabled: true, Tries: 3, Min: time.Millisecond}, discard())
		if got := d.Dials() > 1; got != tt.retry {
			t.Errorf("%s: %d dials; want a retry: %v", tt.name, d.Dials(), tt.retry)
		}
	}

	// A failing up hook: the link refuses to come up.
	_, d := newServer(t, tunnel.ServerConfig{})
	link := tunnel.NewLink(tuntest.New("client1", 1500), tunnel.LinkConfig{Host: tunnel.HostFunc(func(tunnel.Tunnel, netip.Addr) error {
		return errors.New("hook: up script exited with status 3")
	})})
	defer link.Close()
	cfg := clientConfig(t, tuntest.New("client2", 1500))
	cfg.Link = link
	err := connect(t.Context(), framed{d}, cfg, Reconnect{Enabled: true, Min: time.Millisecond}, discard())
	if err == nil || !strings.Contains(err.Error(), "status 3") || d.Dials() != 1 {
		t.Errorf("a failing up hook: %v after %d dials; want it to end the run after one", err, d.Dials())
	}
}

// TestReconnectHangup: a hangup drops the connection and dials again at
// once, whatever the backoff.
func TestReconnectHangup(t *testing.T) {
	srv, d := newServer(t, tunnel.ServerConfig{})
	hup := make(chan os.Signal)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- connect(ctx, framed{d}, clientConfig(t, tuntest.New("client0", 1500)), Reconnect{Enabled: true, Min: time.Hour, Hangup: hup}, discard())
	}()
	<-srv.devs
	hup <- syscall.SIGHUP
	select {
	case <-srv.devs:
	case <-time.After(5 * time.Second):
		t.Fatal("no new connection after a hangup (the backoff is an hour)")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("connect: %v", err)
	}
}

// TestBackoff: the schedule the README gives: 1 s doubling to 60 s, with
// ±20% jitter, starting over once a tunnel stayed up for 30 s.
func TestBackoff(t *testing.T) {
	var rc Reconnect
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i, w := range want {
		if got := rc.Backoff(i + 1); got != w {
			t.Errorf("after %d failures: %v, want %v", i+1, got, w)
		}
	}
	if got := rc.Backoff(1000); got != time.Minute {
		t.Errorf("after 1000 failures: %v, want the cap", got)
	}
	for range 1000 {
		if j := jitter(10*time.Second, time.Minute); j < 8*time.Second || j > 12*time.Second {
			t.Fatalf("jitter of 10s: %v, want within 20%%", j)
		}
		if j := jitter(time.Minute, time.Minute); j > time.Minute {
			t.Fatalf("jitter past the cap: %v", j)
		}
	}
	for _, tt := range []struct {
		failures int
		up       bool
		upFor    time.Duration
		want     int
	}{
		{0, false, 0, 1},
		{5, false, time.Hour, 6},       // never up: the backoff goes on
		{5, true, 10 * time.Second, 6}, // up briefly: it goes on
		{5, true, StableAfter + 1, 1},  // up for 30 s: it starts over
		{0, true, 2 * StableAfter, 1},
	} {
		if got := failuresAfter(tt.failures, tt.up, tt.upFor); got != tt.want {
			t.Errorf("failuresAfter(%d, %v, %v) = %d, want %d", tt.failures, tt.up, tt.upFor, got, tt.want)
		}
	}
}

// TestReasonOf: the reconnect line and systemd's STATUS say what failed,
// without the layers that passed it up.
func TestReasonOf(t *testing.T) {
	exit := &spawn.ExitError{Signaled: true}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("tunnel: connection to the peer lost: %w", exit), "ssh was killed by a signal"},
		{fmt.Errorf("x: %w", &tunnel.DeadPeerError{Silent: 9 * time.Second}), "no sign of life from the peer for 9s; assuming the connection is dead"},
		{errors.New("tunnel: something else"), "tunnel: something else"},
	} {
		if got := reasonOf(tt.err); got != tt.want {
			t.Errorf("reasonOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
