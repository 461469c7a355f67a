package client

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tunnel"
)

// TestStripedAdjust: the first connection begins the session until its
// Join is known, then joins it; the others wait for the Join; a refused
// join makes the first begin the session anew and the others wait for
// the new Join.
func TestStripedAdjust(t *testing.T) {
	st := newStriped(3, nil, tunnel.ClientConfig{}, Reconnect{}, new(tunnel.Stats), nil, slog.New(slog.DiscardHandler))
	st.started = true // no device: the other connections are this test's calls
	ctx := context.Background()
	first, second := st.adjust(0), st.adjust(1)
	var c tunnel.ClientConfig
	if err := first(ctx, &c, nil); err != nil || c.Join != nil {
		t.Fatalf("the first attempt: join %+v, %v; want none", c.Join, err)
	}
	got := make(chan *framing.Join, 1)
	go func() {
		var c tunnel.ClientConfig
		second(ctx, &c, nil)
		got <- c.Join
	}()
	select {
	case j := <-got:
		t.Fatalf("the second connection did not wait for the session: %+v", j)
	case <-time.After(50 * time.Millisecond):
	}
	j := &framing.Join{Session: strings.Repeat("a", 32), Secret: strings.Repeat("b", 64)}
	st.joined(ctx, j)
	if g := <-got; g != j {
		t.Errorf("the second connection joins %+v, want %+v", g, j)
	}
	if err := first(ctx, &c, errors.New("connection lost")); err != nil || c.Join != j {
		t.Errorf("the first, dialled again: join %+v, %v; want the session's", c.Join, err)
	}
	refused := &tunnel.JoinError{Err: errors.New("no such striped session")}
	if err := first(ctx, &c, refused); err != nil || c.Join != nil {
		t.Errorf("after a refused join: join %+v, %v; want a new session", c.Join, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := second(cancelled, &c, refused); err == nil {
		t.Errorf("a connection waiting for a session the run gave up on went on")
	}
}

// TestStripedOlderServer: a server that answers the first connection
// without a Join (an older sshvpn) gets one stream, and the user a
// warning, once.
func TestStripedOlderServer(t *testing.T) {
	var b strings.Builder
	st := newStriped(3, nil, tunnel.ClientConfig{}, Reconnect{}, new(tunnel.Stats), nil, slog.New(slog.NewTextHandler(&b, nil)))
	st.joined(context.Background(), nil)
	st.joined(context.Background(), nil) // a reconnect: no second warning
	if n := strings.Count(b.String(), "does not stripe the tunnel"); n != 1 || !strings.Contains(b.String(), "one stream instead of 3") {
		t.Errorf("%d warnings:\n%s", n, b.String())
	}
	if st.started || st.running != 0 {
		t.Errorf("other connections started for a server that does not stripe")
	}
}
