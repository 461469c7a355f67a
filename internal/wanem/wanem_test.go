package wanem

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"
)

// packets is an in-memory packet device: Read returns what is put on in,
// Write records each packet with its arrival time.
type packets struct {
	in   chan []byte
	mu   sync.Mutex
	got  []arrival
	done chan struct{}
}

type arrival struct {
	seq uint32
	at  time.Time
}

func newPackets() *packets { return &packets{in: make(chan []byte, 100000), done: make(chan struct{})} }

func (p *packets) Read(b []byte) (int, error) {
	select {
	case pkt := <-p.in:
		return copy(b, pkt), nil
	case <-p.done:
		return 0, io.EOF
	}
}

func (p *packets) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.got = append(p.got, arrival{binary.BigEndian.Uint32(b), time.Now()})
	p.mu.Unlock()
	return len(b), nil
}

func (p *packets) arrived() []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]arrival(nil), p.got...)
}

func pkt(seq uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, seq)
	return b
}

// run sends n packets of size through a Pipe with profile p, spaced by
// gap, and returns what arrived once the link has been quiet for settle.
func run(t *testing.T, p Profile, n, size int, gap, settle time.Duration) ([]arrival, time.Time, *Stats) {
	t.Helper()
	dev := newPackets()
	st := new(Stats)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Pipe(ctx, dev, dev, p, st) }()
	start := time.Now()
	for i := range n {
		dev.in <- pkt(uint32(i), size)
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	time.Sleep(settle)
	// Then until every packet is accounted for, delivered or dropped: on
	// a loaded machine (the race detector, CI) the emulator may still be
	// at work after settle.
	deadline := time.Now().Add(10 * time.Second)
	for st.Packets.Load()+st.Lost.Load()+st.Overflow.Load()+st.OverLimit.Load() < uint64(n) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(dev.done)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return dev.arrived(), start, st
}

func TestParseProfile(t *testing.T) {
	p, err := ParseProfile("delay=20ms jitter=1ms loss=1% rate=200mbit queue=50ms")
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{Delay: 20 * time.Millisecond, Jitter: time.Millisecond, Loss: 0.01, Rate: 200e6, Queue: 50 * time.Millisecond}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	if q, err := ParseProfile(p.String()); err != nil || q != p {
		t.Errorf("round trip %q: %+v, %v", p.String(), q, err)
	}
	for _, bad := range []string{"delay", "delay=-1ms", "loss=200%", "rate=fast", "speed=1", "limit=0"} {
		if _, err := ParseProfile(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

// TestDelay: every packet arrives no earlier than the delay, in order.
func TestDelay(t *testing.T) {
	got, start, _ := run(t, Profile{Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond}, 200, 100, 0, 200*time.Millisecond)
	if len(got) != 200 {
		t.Fatalf("%d of 200 packets arrived", len(got))
	}
	for i, a := range got {
		if a.seq != uint32(i) {
			t.Fatalf("packet %d arrived as number %d: reordered", a.seq, i)
		}
	}
	if d := got[0].at.Sub(start); d < 25*time.Millisecond {
		t.Errorf("the first packet took %v, less than the delay less the jitter", d)
	}
}

// TestLoss: about the given share is lost, and counted.
func TestLoss(t *testing.T) {
	got, _, st := run(t, Profile{Loss: 0.1}, 20000, 64, 0, 100*time.Millisecond)
	lost := st.Lost.Load()
	if lost < 1500 || lost > 2500 {
		t.Errorf("%d of 20000 lost at 10%%", lost)
	}
	if uint64(len(got))+lost != 20000 {
		t.Errorf("%d arrived and %d lost of 20000", len(got), lost)
	}
}

// TestRate: a burst beyond the queue is cut at the queue, and what passes
// leaves at the rate.
func TestRate(t *testing.T) {
	// 10 Mbit/s, a 20 ms queue: 25 kB, 25 packets of 1000 bytes.
	p := Profile{Rate: 10e6, Queue: 20 * time.Millisecond}
	got, _, st := run(t, p, 100, 1000, 0, 100*time.Millisecond)
	if n := len(got); n < 20 || n > 30 {
		t.Errorf("%d of a 100-packet burst passed a 25-packet queue", n)
	}
	if st.Overflow.Load()+uint64(len(got)) != 100 {
		t.Errorf("%d overflowed, %d passed, of 100", st.Overflow.Load(), len(got))
	}
	if len(got) > 2 {
		span := got[len(got)-1].at.Sub(got[0].at)
		want := time.Duration(len(got)-1) * 800 * time.Microsecond // 1000 bytes at 10 Mbit/s
		if span < want*8/10 {
			t.Errorf("%d packets left in %v, faster than the rate allows (%v)", len(got), span, want)
		}
	}
}
