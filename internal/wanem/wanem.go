// Package wanem is the lab's link emulator: it carries packets one way
// from a reader to a writer as a long, lossy, narrow link would, with a
// one-way delay, optional jitter, random loss, and a rate limit behind a
// bounded drop-tail queue. This kernel has no sch_netem; the lab runs
// wanem (see cmd/wanem) between two tun devices, one in the client's
// namespace and one in the server's, in place of the veth.
//
// Packets are never reordered: jitter stretches the gaps between packets
// but a packet never departs before the one ahead of it. The emulator
// counts what it drops, by reason, so that a benchmark can tell its own
// losses from the tunnel's.
package wanem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Profile is how one direction of the link behaves.
type Profile struct {
	Delay  time.Duration // one-way propagation delay
	Jitter time.Duration // each packet's delay varies by up to ±Jitter
	Loss   float64       // the probability that a packet is lost, 0..1
	Rate   int64         // bits per second; 0 is unlimited
	// Queue is the drop-tail queue in front of the rate limit, as time at
	// the rate (a packet that would wait longer is dropped); 100 ms when
	// zero. Meaningless without Rate.
	Queue time.Duration
	// Limit caps the packets in flight (on the wire and queued), a bound
	// on memory whatever the delay; DefaultLimit when zero.
	Limit int
}

// DefaultLimit is the packets in flight per direction when Profile.Limit
// is zero: 50k packets of 1500 bytes is 600 Mbit/s at 1 s of delay.
const DefaultLimit = 50000

// DefaultQueue is the drop-tail queue when Profile.Queue is zero.
const DefaultQueue = 100 * time.Millisecond

// ParseProfile parses "delay=20ms jitter=1ms loss=1% rate=200mbit
// queue=50ms limit=10000" (any subset, in any order; "" is a plain link).
func ParseProfile(s string) (Profile, error) {
	var p Profile
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return p, fmt.Errorf("wanem: %q: want key=value", f)
		}
		var err error
		switch k {
		case "delay":
			p.Delay, err = duration(v)
		case "jitter":
			p.Jitter, err = duration(v)
		case "queue":
			p.Queue, err = duration(v)
		case "loss":
			p.Loss, err = percent(v)
		case "rate":
			p.Rate, err = rate(v)
		case "limit":
			p.Limit, err = strconv.Atoi(v)
			if err == nil && p.Limit <= 0 {
				err = errors.New("want a positive number")
			}
		default:
			return p, fmt.Errorf("wanem: unknown setting %q (delay, jitter, loss, rate, queue, limit)", k)
		}
		if err != nil {
			return p, fmt.Errorf("wanem: %s=%s: %w", k, v, err)
		}
	}
	return p, nil
}

func duration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && (d < 0 || d > time.Minute) {
		err = errors.New("want 0 to 1m")
	}
	return d, err
}

func percent(v string) (float64, error) {
	n, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || n < 0 || n > 100 {
		return 0, errors.New("want a percentage, 0% to 100%")
	}
	return n / 100, nil
}

// rate parses "200mbit", "1gbit", "500kbit" or plain bits per second.
func rate(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToLower(v), u.suffix) {
			v, mult = v[:len(v)-len(u.suffix)], u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a rate such as 200mbit")
	}
	return int64(n * mult), nil
}

// String is the profile as ParseProfile reads it.
func (p Profile) String() string {
	var f []string
	if p.Delay > 0 {
		f = append(f, "delay="+p.Delay.String())
	}
	if p.Jitter > 0 {
		f = append(f, "jitter="+p.Jitter.String())
	}
	if p.Loss > 0 {
		f = append(f, "loss="+strconv.FormatFloat(p.Loss*100, 'g', -1, 64)+"%")
	}
	if p.Rate > 0 {
		f = append(f, "rate="+strconv.FormatInt(p.Rate, 10)+"bit")
		if p.Queue > 0 {
			f = append(f, "queue="+p.Queue.String())
		}
	}
	if p.Limit > 0 {
		f = append(f, "limit="+strconv.Itoa(p.Limit))
	}
	return strings.Join(f, " ")
}

// Stats counts one direction's packets.
type Stats struct {
	Packets, Bytes atomic.Uint64 // delivered
	Lost           atomic.Uint64 // dropped by Loss
	Overflow       atomic.Uint64 // dropped by the rate limit's queue
	OverLimit      atomic.Uint64 // dropped by Limit
}

// Snapshot is a Stats at one moment, for JSON.
type Snapshot struct {
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	Lost      uint64 `json:"lost"`
	Overflow  uint64 `json:"overflow"`
	OverLimit uint64 `json:"over_limit"`
}

// Snapshot reads the counters.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{Packets: s.Packets.Load(), Bytes: s.Bytes.Load(), Lost: s.Lost.Load(), Overflow: s.Overflow.Load(), OverLimit: s.OverLimit.Load()}
}

// packet is one packet on its way, with the time it leaves the link.
type packet struct {
	b  []byte
	at time.Time
}

// MaxPacket is the largest packet a Pipe carries.
const MaxPacket = 65536

// Pipe carries packets from in to out under p until ctx ends or either
// fails: each Read of in is one packet, each Write of out one packet. It
// returns nil when ctx ended, else the first error. Closing in and out is
// the caller's (it unblocks a pending Read).
func Pipe(ctx context.Context, in io.Reader, out io.Writer, p Profile, st *Stats) error {
	if st == nil {
		st = new(Stats)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	queue := p.Queue
	if queue <= 0 {
		queue = DefaultQueue
	}
	line := make(chan packet, limit)
	free := make(chan []byte, limit)
	errc := make(chan error, 1)
	dead := make(chan struct{}) // deliver gave up
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := deliver(ctx, line, free, out, st)
		close(dead)
		errc <- err
		for range line { // until the reader has seen dead
		}
	}()

	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var busyUntil, last time.Time // the rate limit's queue; the last departure
	buf := make([]byte, MaxPacket)
	err := func() error {
		for {
			n, err := in.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("wanem: reading: %w", err)
			}
			select {
			case <-dead:
				return nil // deliver's error is the one to report
			default:
			}
			if n == 0 {
				continue
			}
			if p.Loss > 0 && rnd.Float64() < p.Loss {
				st.Lost.Add(1)
				continue
			}
			now := time.Now()
			at := now
			if p.Rate > 0 {
				start := busyUntil
				if start.Before(now) {
					start = now
				}
				if start.Sub(now) > queue {
					st.Overflow.Add(1)
					continue
				}
				busyUntil = start.Add(time.Duration(float64(n*8) / float64(p.Rate) * float64(time.Second)))
				at = busyUntil
			}
			at = at.Add(p.Delay)
			if p.Jitter > 0 {
				at = at.Add(time.Duration((rnd.Float64()*2 - 1) * float64(p.Jitter)))
			}
			if at.Before(last) {
				at = last // no reordering
			}
			last = at
			var b []byte
			select {
			case b = <-free:
			default:
				b = make([]byte, 0, 2048)
			}
			b = append(b[:0], buf[:n]...)
			select {
			case line <- packet{b, at}:
			case <-ctx.Done():
				return nil
			default:
				st.OverLimit.Add(1)
			}
		}
	}()
	close(line)
	wg.Wait()
	if derr := <-errc; err == nil {
		err = derr
	}
	return err
}

// deliver writes each packet of line to out once its time has come.
func deliver(ctx context.Context, line <-chan packet, free chan<- []byte, out io.Writer, st *Stats) error {
	for pkt := range line {
		if !sleepUntil(ctx, pkt.at) {
			return nil
		}
		if _, err := out.Write(pkt.b); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wanem: writing: %w", err)
		}
		st.Packets.Add(1)
		st.Bytes.Add(uint64(len(pkt.b)))
		select {
		case free <- pkt.b:
		default:
		}
	}
	return nil
}
