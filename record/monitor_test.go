package record

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tunnel"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestMonitor: -v logs a counter line periodically; the status follows
// the tunnel through a reconnect, counting it, with the drops by reason.
func TestMonitor(t *testing.T) {
	var buf lockedBuf
	stats := new(tunnel.Stats)
	m := NewMonitor(nil, stats, slog.New(slog.NewTextHandler(&buf, nil)), true)
	m.every = 20 * time.Millisecond
	var states []string
	m.OnState = func(state, line string) { states = append(states, state+": "+line) }
	stop := m.Start()
	stats.PacketsOut.Add(3)
	stats.BytesOut.Add(300)
	stats.Dropped.Add(2)
	stats.RTT.Store(int64(1500 * time.Microsecond))
	m.Up(tunnel.Tunnel{MTU: 1400}, "tunnel up: tun0")
	m.Retrying(1, time.Second, "ssh exited")
	m.Up(tunnel.Tunnel{MTU: 1400}, "tunnel up: tun0")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "msg=counters") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if !strings.Contains(buf.String(), "msg=counters state=up packets_out=3 bytes_out=300") || !strings.Contains(buf.String(), "dropped_from_peer=2") {
		t.Errorf("no counter line with -v:\n%s", buf.String())
	}
	st := m.status()
	if st.State != registry.StateUp || st.Reconnects != 1 || st.MTU != 1400 || st.RTT != 1500*time.Microsecond || st.Drops["from_peer"] != 2 {
		t.Errorf("status %+v", st)
	}
	if len(states) != 3 || !strings.HasPrefix(states[1], "reconnecting: reconnecting (attempt 1 in 1s): ssh exited") {
		t.Errorf("states %q", states)
	}
}
