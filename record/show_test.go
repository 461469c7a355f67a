package record

import (
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/registry"
)

// show is Show's output for recs, all in this namespace.
func show(recs []registry.Record, now time.Time, hidden int) string {
	var b strings.Builder
	Show(&b, recs, now, "net:[1]", hidden)
	return b.String()
}

// TestShowQueueCounters: the queue's drops are listed with the other
// drops, by reason, and its ECN marks on a line of their own (they were
// delivered).
func TestShowQueueCounters(t *testing.T) {
	now := time.Now()
	st := &registry.Status{State: registry.StateUp, Updated: now,
		Drops: map[string]uint64{"queue_codel": 7, "queue_full": 2, MarkedECN: 5, "from_peer": 1}}
	out := show([]registry.Record{{Side: registry.SideClient, Dev: "tun0", Started: now, Status: st, NetNS: "net:[1]"}}, now, 0)
	for _, want := range []string{"dropped    from peer 1, queue codel 7, queue full 2", "ecn        5 packets marked"} {
		if !strings.Contains(out, want) {
			t.Errorf("status:\n%s\nwant %q", out, want)
		}
	}
	if strings.Contains(out, "marked ecn") {
		t.Errorf("marks listed as drops:\n%s", out)
	}
}

// TestShowStreams: a striped tunnel lists each stream's state, round
// trip and bytes.
func TestShowStreams(t *testing.T) {
	now := time.Now()
	st := &registry.Status{State: registry.StateUp, Updated: now, Streams: []registry.StreamStatus{
		{State: registry.StateUp, RTT: 41 * time.Millisecond, BytesOut: 2 << 20, BytesIn: 1 << 10},
		{State: registry.StateReconnecting},
	}}
	out := show([]registry.Record{{Side: registry.SideClient, Dev: "tun0", Started: now, Status: st, NetNS: "net:[1]"}}, now, 0)
	for _, want := range []string{"stream 1   up, rtt 41ms, sent 2.0 MiB, received 1.0 KiB", "stream 2   reconnecting, rtt -, sent 0 B"} {
		if !strings.Contains(out, want) {
			t.Errorf("status:\n%s\nwant %q", out, want)
		}
	}
}

// TestShowForAPerson: counts in the singular for one, an RTT of "-"
// before the first keepalive, columns that a long profile name does not
// move, and a word on the sessions of other namespaces left out.
func TestShowForAPerson(t *testing.T) {
	now := time.Now()
	rec := func(profile string) registry.Record {
		return registry.Record{Side: registry.SideClient, Dev: "tun0", Profile: profile, Started: now, NetNS: "net:[1]",
			Status: &registry.Status{State: registry.StateUp, Updated: now, PacketsOut: 1, Reconnects: 1}}
	}
	short, long := show([]registry.Record{rec("a")}, now, 0), show([]registry.Record{rec("a-very-long-profile-name-indeed")}, now, 2)
	for _, want := range []string{"in 1 packet\n", "1 reconnect\n", "rtt        - (no keepalive answered yet)"} {
		if !strings.Contains(short, want) {
			t.Errorf("status:\n%s\nwant %q", short, want)
		}
	}
	if !strings.Contains(long, "  state      up") || !strings.Contains(short, "  state      up") {
		t.Errorf("the columns moved with the profile's name:\n%s\n%s", short, long)
	}
	if !strings.Contains(long, "2 more in other network namespaces: sshvpn status --all") {
		t.Errorf("no word on the sessions left out:\n%s", long)
	}
}
