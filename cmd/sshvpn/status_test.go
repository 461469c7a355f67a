package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
)

// TestStatusQueueCounters: the queue's drops are listed with the other
// drops, by reason, and its ECN marks on a line of their own (they were
// delivered).
func TestStatusQueueCounters(t *testing.T) {
	now := time.Now()
	st := &registry.Status{State: registry.StateUp, Updated: now,
		Drops: map[string]uint64{"queue_codel": 7, "queue_full": 2, record.MarkedECN: 5, "from_peer": 1}}
	var b strings.Builder
	printStatus(&b, []registry.Record{{Side: registry.SideClient, Dev: "tun0", Started: now, Status: st}}, now)
	out := b.String()
	for _, want := range []string{"dropped    from peer 1, queue codel 7, queue full 2", "ecn        5 packets marked"} {
		if !strings.Contains(out, want) {
			t.Errorf("status:\n%s\nwant %q", out, want)
		}
	}
	if strings.Contains(out, "marked ecn") {
		t.Errorf("marks listed as drops:\n%s", out)
	}
}

// TestStatusStreams: a striped tunnel lists each stream's state, round
// trip and bytes.
func TestStatusStreams(t *testing.T) {
	now := time.Now()
	st := &registry.Status{State: registry.StateUp, Updated: now, Streams: []registry.StreamStatus{
		{State: registry.StateUp, RTT: 41 * time.Millisecond, BytesOut: 2 << 20, BytesIn: 1 << 10},
		{State: registry.StateReconnecting},
	}}
	var b strings.Builder
	printStatus(&b, []registry.Record{{Side: registry.SideClient, Dev: "tun0", Started: now, Status: st}}, now)
	out := b.String()
	for _, want := range []string{"stream 1   up, rtt 41ms, sent 2.0 MiB, received 1.0 KiB", "stream 2   reconnecting, rtt -, sent 0 B"} {
		if !strings.Contains(out, want) {
			t.Errorf("status:\n%s\nwant %q", out, want)
		}
	}
}
