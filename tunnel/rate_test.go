package tunnel

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/tun"
)

// TestRateAllow: a packet limit admits its burst, then refuses until time
// passes; a byte limit a tenth of a second's worth; no limit is no check
// at all.
func TestRateAllow(t *testing.T) {
	if allow(RateLimit{}) != nil {
		t.Error("a zero limit made a check")
	}
	now := time.Now()
	lim := newLimiter(RateLimit{PacketsPerSec: 10}, now)
	if n := admitted(lim, now, 100, 1, 100); n != 8 {
		t.Errorf("10 pps admitted %d of 100 packets sent at once, want the burst of 8", n)
	}
	if lim.allowAt(now.Add(50*time.Millisecond), 1, 100) || !lim.allowAt(now.Add(100*time.Millisecond), 1, 100) {
		t.Error("10 pps: not one packet per 100 ms after the burst")
	}
	lim = newLimiter(RateLimit{BytesPerSec: 2e6}, now)
	if n := admitted(lim, now, 1000, 1, 1500); n != 133 { // 200 kB of 1500-byte packets
		t.Errorf("2 MB/s admitted %d 1500-byte packets at once, want a tenth of a second's worth", n)
	}
}

// admitted offers lim count packets of n segments and size bytes at now,
// and returns how many it admitted.
func admitted(lim *limiter, now time.Time, count, n, size int) int {
	ok := 0
	for range count {
		if lim.allowAt(now, n, size) {
			ok++
		}
	}
	return ok
}

// superWire is a TCP super-packet of 40 segments of 100 bytes, and what it
// is on the wire: 40 packets of 140 bytes, 1560 bytes more than its 4040.
func superWire(t *testing.T) (b []byte, packets, bytes int) {
	b = superPacket(clientUp, 40+40*100)
	binary.LittleEndian.PutUint16(b[4:], 100) // gso_size
	h, _ := tun.ParseVnetHdr(b)
	packets, bytes = h.Wire(b[tun.VnetHdrLen:])
	if packets != 40 || bytes != 40*140 {
		t.Fatalf("a super-packet of 40 segments of 100 bytes is %d packets of %d bytes on the wire", packets, bytes)
	}
	return b, packets, bytes
}

// TestRateSegments: a packet limit counts a super-packet's segments, so a
// 100 pps limit fed super-packets of 40 segments admits about 100
// segments a second (one super-packet every 0.4 s), not 100
// super-packets; one larger than the bucket still passes, and the debt
// holds back what follows.
func TestRateSegments(t *testing.T) {
	_, n, size := superWire(t)
	start := time.Now()
	lim := newLimiter(RateLimit{PacketsPerSec: 100}, start)
	segs := 0
	for ms := range 10_000 { // one super-packet offered a millisecond for 10 s
		if lim.allowAt(start.Add(time.Duration(ms)*time.Millisecond), n, size) {
			segs += n
		}
	}
	// 100 a second for 10 s, and the first that the full bucket let go.
	if segs < 1000-n || segs > 1000+n {
		t.Errorf("100 pps admitted %d segments in 10 s of 40-segment super-packets, want about 1000", segs)
	}
}

// TestRateWireBytes: a byte limit counts each segment's headers: at 1 MB/s
// for 100 s, 40-segment super-packets of 4040 bytes that are 5600 on the
// wire pass about 1e8/5600 times, not 1e8/4040.
func TestRateWireBytes(t *testing.T) {
	_, n, size := superWire(t)
	start := time.Now()
	lim := newLimiter(RateLimit{BytesPerSec: 1e6}, start)
	sent := 0
	for ms := range 100_000 {
		if lim.allowAt(start.Add(time.Duration(ms)*time.Millisecond), n, size) {
			sent += size
		}
	}
	// 1 MB a second for 100 s, and the bucket of 2 MaxMTU it began with.
	if sent < 1e8 || sent > 1e8+2*policy.MaxMTU+size {
		t.Errorf("1 MB/s admitted %d bytes in 100 s, want about 1e8 as the wire counts them", sent)
	}
}

// TestRateBothLimits: a packet over either limit takes from neither.
func TestRateBothLimits(t *testing.T) {
	now := time.Now()
	lim := newLimiter(RateLimit{PacketsPerSec: 1000, BytesPerSec: 1e5}, now) // buckets of 100 packets, 2 MaxMTU bytes
	if !lim.allowAt(now, 1, 2*policy.MaxMTU) || lim.allowAt(now, 1, 1) {
		t.Fatal("the byte bucket did not empty")
	}
	later := now.Add(10 * time.Millisecond) // 1000 bytes, 10 packets
	if n := admitted(lim, later, 100, 1, 100); n != 10 {
		t.Errorf("admitted %d 100-byte packets with 1000 bytes in the bucket, want 10", n)
	}
	if lim.packets.tokens != 90 {
		t.Errorf("%v packet tokens left after 10 packets, want 90: those refused over the byte limit took some", lim.packets.tokens)
	}
}

// TestRateAllocs: the check allocates nothing per packet.
func TestRateAllocs(t *testing.T) {
	allow := allow(RateLimit{PacketsPerSec: 1e9, BytesPerSec: 1e12})
	if a := testing.AllocsPerRun(1000, func() { allow(40, 57600) }); a != 0 {
		t.Errorf("%v allocations per packet", a)
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
	so.stats, so.guard = stats, &GuardConfig{Rate: RateLimit{PacketsPerSec: 20}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvDone := goErr(func() error {
		return Serve(ctx, sc, ServerConfig{Open: so.Open,
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

// TestServeRateSegments: the server's packet limit counts the segments of
// the super-packets that cross it, both ways. At 100 pps, 12 super-packets
// of 40 segments sent at once pass one (the next would wait 0.4 s), where
// counting super-packets passed the bucket's 10.
func TestServeRateSegments(t *testing.T) {
	checkLeaks(t)
	so := newOpener("server0")
	so.dev.Offload = allOffloads
	stats := new(Stats)
	so.stats, so.guard = stats, &GuardConfig{Rate: RateLimit{PacketsPerSec: 100}}
	cc, sc := socketPair(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvDone := goErr(func() error {
		return Serve(ctx, sc, ServerConfig{Open: so.Open,
			Logger: testLogger(t).With("side", "server")})
	})
	r, w := framing.NewReader(cc), framing.NewWriter(cc)
	w.WritePreamble()
	w.WriteHello(&framing.Hello{Role: "client", Mode: "tun", Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24"),
		Offloads: []string{"csum", "tso4"}, MaxFrame: framing.MaxOffloadPayload})
	w.Flush()
	if _, err := r.ReadPreamble(); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := r.ReadFrame(); typ != framing.TypeHello || err != nil {
		t.Fatalf("server answered %v, %v", typ, err)
	}
	w.AllowOffload(framing.MaxOffloadPayload)
	up, _, _ := superWire(t)
	down := superPacket(clientUp.reversed(), 40+40*100)
	binary.LittleEndian.PutUint16(down[4:], 100)
	const sent = 12

	// Client to server.
	for range sent {
		w.WriteFrame(framing.TypeOffload, up)
	}
	w.Flush()
	if !eventuallyTrue(5*time.Second, func() bool { return stats.PacketsIn.Load()+stats.DroppedRate.Load() == sent }) {
		t.Fatalf("in %d, dropped over rate %d; want %d in all", stats.PacketsIn.Load(), stats.DroppedRate.Load(), sent)
	}
	if in := stats.PacketsIn.Load(); in < 1 || in > 3 {
		t.Errorf("%d of %d super-packets of 40 segments passed a 100 pps limit at once, want 1", in, sent)
	}

	// Server to client.
	frames := make(chan int, sent)
	go func() {
		for {
			typ, _, err := r.ReadFrame()
			if err != nil {
				close(frames)
				return
			}
			if typ == framing.TypeOffload {
				frames <- 1
			}
		}
	}()
	dropped := stats.DroppedRate.Load()
	for range sent {
		so.dev.Inbound <- down
	}
	if !eventuallyTrue(5*time.Second, func() bool { return stats.PacketsOut.Load()+stats.DroppedRate.Load()-dropped == sent }) {
		t.Fatalf("out %d, dropped over rate %d; want %d in all", stats.PacketsOut.Load(), stats.DroppedRate.Load()-dropped, sent)
	}
	if out := stats.PacketsOut.Load(); out > 3 {
		t.Errorf("%d of %d super-packets of 40 segments left under a 100 pps limit at once, want at most 1", out, sent)
	}
	cancel()
	if err := wait(t, "Serve", srvDone, 5*time.Second); err != nil {
		t.Errorf("Serve: %v", err)
	}
	for range frames {
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
	so.stats, so.guard = stats, &GuardConfig{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvDone := goErr(func() error {
		return Serve(ctx, sc, ServerConfig{Open: so.Open, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
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
