package sshvpn

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in             string
		bytes, packets float64
		err            string
	}{
		{in: "20Mbit", bytes: 2.5e6},
		{in: "800kbit", bytes: 1e5},
		{in: "1Gbit/s", bytes: 1.25e8},
		{in: "2.5MB", bytes: 2.5e6},
		{in: "100kB", bytes: 1e5},
		{in: "5000pps", packets: 5000},
		{in: "20Mb", err: "say bit or B"},
		{in: "fast", err: "want a number"},
		{in: "10parsecs", err: "unknown unit"},
		{in: "-5pps", err: "want a number"},
		{in: "8bit", err: "below one packet"},
	} {
		var l RateLimit
		err := ParseRate(c.in, &l)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseRate(%q) = %v, want an error containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || l.BytesPerSec != c.bytes || l.PacketsPerSec != c.packets {
			t.Errorf("ParseRate(%q) = %+v, %v; want %v B/s, %v pps", c.in, l, err, c.bytes, c.packets)
		}
	}
}

// TestRateAllow: a packet limit admits its burst, then refuses until time
// passes; no limit is no check at all.
func TestRateAllow(t *testing.T) {
	if (RateLimit{}).allow() != nil {
		t.Error("a zero limit made a check")
	}
	allow := RateLimit{PacketsPerSec: 10}.allow()
	n := 0
	for range 100 {
		if allow(100) {
			n++
		}
	}
	if n < 8 || n > 12 {
		t.Errorf("10 pps admitted %d of 100 packets sent at once, want the burst of about 8", n)
	}
	bytes := RateLimit{BytesPerSec: 1e6}.allow()
	sent := 0
	for range 1000 {
		if bytes(1500) {
			sent += 1500
		}
	}
	if sent > 2*MaxMTU+1e5 || sent < 1e5 {
		t.Errorf("1 MB/s admitted %d bytes at once, want about a tenth of a second's worth", sent)
	}
}

// TestServeRateLimit: a client sending faster than the server's --rate
// gets only the limit's worth into the device; the rest is dropped and
// counted, and the session goes on.
func TestServeRateLimit(t *testing.T) {
	checkLeaks(t)
	cc, sc := socketPair(t)
	so := newOpener("server0")
	stats := new(Stats)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvDone := goErr(func() error {
		return Serve(ctx, sc, ServerConfig{Open: so.Open, Stats: stats, Rate: RateLimit{PacketsPerSec: 20},
			Logger: testLogger(t).With("side", "server")})
	})
	_, w := rawClient(t, cc)
	go io.Copy(io.Discard, cc)
	pkt := ipPacket(mustAddr("10.9.0.2"), mustAddr("10.9.0.1"), make([]byte, 100))
	for range 200 {
		w.WriteFrame(framing.TypeData, pkt)
	}
	w.Flush()
	if !eventuallyTrue(5*time.Second, func() bool { return stats.PacketsIn.Load()+stats.DroppedRate.Load() == 200 }) {
		t.Fatalf("in %d, dropped over rate %d; want 200 in all", stats.PacketsIn.Load(), stats.DroppedRate.Load())
	}
	if in := stats.PacketsIn.Load(); in < 1 || in > 20 {
		t.Errorf("%d of 200 packets sent at once passed a 20 pps limit", in)
	}
	cancel()
	if err := wait(t, "Serve", srvDone, 5*time.Second); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestNonIPDropLog: a frame that is no IP packet is dropped with a message
// that says so (not src=""), marked for the server's admin alone.
func TestNonIPDropLog(t *testing.T) {
	checkLeaks(t)
	cc, sc := socketPair(t)
	so := newOpener("server0")
	stats := new(Stats)
	var logBuf syncBuf
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvDone := goErr(func() error {
		return Serve(ctx, sc, ServerConfig{Open: so.Open, Stats: stats, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	})
	_, w := rawClient(t, cc)
	go io.Copy(io.Discard, cc)
	w.WriteFrame(framing.TypeData, []byte{0x00, 0x01, 0x02, 0x03})
	w.Flush()
	if !eventuallyTrue(5*time.Second, func() bool { return stats.Dropped.Load() == 1 }) {
		t.Fatal("the non-IP frame was not dropped")
	}
	cancel()
	wait(t, "Serve", srvDone, 5*time.Second)
	log := logBuf.String()
	if !strings.Contains(log, "not IP packets") || strings.Contains(log, `src=""`) || !strings.Contains(log, AdminOnlyKey+"=true") {
		t.Errorf("log:\n%s", log)
	}
}
