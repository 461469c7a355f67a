package metrics

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sshvpn/sshvpn/registry"
)

func records() ([]registry.Record, error) {
	return []registry.Record{
		{Side: registry.SideRemote, Dev: "tun0", User: "alice", Key: "SHA256:abc", Peer: "192.0.2.1 port 40000",
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/30")}, Started: time.Unix(1700000000, 0),
			Status: &registry.Status{BytesIn: 1000, BytesOut: 2000, PacketsIn: 10, PacketsOut: 20, RTT: 40 * time.Millisecond,
				Reconnects: 1, Drops: map[string]uint64{"from_peer": 3}}},
		{Side: registry.SideClient, Dev: "tun1", Started: time.Unix(1700000100, 0)},
	}, nil
}

// TestWrite: what Write prints parses as the Prometheus text format, with
// the sessions' figures and labels; without client labels, a series is
// named by its side and device alone.
func TestWrite(t *testing.T) {
	var b strings.Builder
	if err := Write(&b, New(records, Options{})); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	got := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in\n%s", name, b.String())
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
		t.Fatalf("no %s%v in\n%s", name, labels, b.String())
		return 0
	}
	alice := map[string]string{"user": "alice", "key": "SHA256:abc", "device": "tun0", "tunnel_address": "198.18.0.2", "client_address": "192.0.2.1"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sshvpn_sessions", map[string]string{"side": "remote"}, 1},
		{"sshvpn_sessions", map[string]string{"side": "client"}, 1},
		{"sshvpn_session_received_bytes_total", alice, 1000},
		{"sshvpn_session_sent_bytes_total", alice, 2000},
		{"sshvpn_session_received_packets_total", alice, 10},
		{"sshvpn_session_sent_packets_total", alice, 20},
		{"sshvpn_session_rtt_seconds", alice, 0.04},
		{"sshvpn_reconnects_total", alice, 1},
		{"sshvpn_dropped_packets_total", map[string]string{"reason": "from_peer", "user": "alice"}, 3},
		{"sshvpn_session_start_time_seconds", map[string]string{"device": "tun1"}, 1700000100},
	} {
		if v := got(c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	b.Reset()
	if err := Write(&b, New(records, Options{NoClientLabels: true})); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "alice") || strings.Contains(b.String(), "192.0.2.1") {
		t.Errorf("client labels with NoClientLabels:\n%s", b.String())
	}
}
