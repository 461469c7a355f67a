package tunnel

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimit caps one direction of a session's traffic: the server applies it
// to what the client sends and, separately, to what it sends the client.
// Packets over the limit are dropped and counted (Stats.DroppedRate). A zero
// field sets no limit. Both count what the wire carries: a GSO super-packet
// is as many packets as it has segments, and as many bytes as they come to,
// each with its own copy of the IP and transport headers.
type RateLimit struct {
	BytesPerSec   float64
	PacketsPerSec float64
}

// IsZero reports whether l limits nothing.
func (l RateLimit) IsZero() bool { return l.BytesPerSec <= 0 && l.PacketsPerSec <= 0 }

func (l RateLimit) String() string {
	var parts []string
	if l.BytesPerSec > 0 {
		parts = append(parts, strconv.FormatFloat(l.BytesPerSec*8, 'f', -1, 64)+"bit/s")
	}
	if l.PacketsPerSec > 0 {
		parts = append(parts, strconv.FormatFloat(l.PacketsPerSec, 'f', -1, 64)+"pps")
	}
	return strings.Join(parts, ", ")
}

// ParseRate reads one limit: a number with a unit, bits ("800kbit",
// "20Mbit", "1gbit"), bytes ("100kB", "2.5MB") or packets ("5000pps"), per
// second, with an optional "/s"; k, M and G (either case) are powers of
// 1000, and a lone "b" is refused as ambiguous. It sets the field the unit
// names in l.
func ParseRate(s string, l *RateLimit) error {
	in := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	i := strings.IndexFunc(in, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return fmt.Errorf("--rate %q: want a number and a unit, such as 20Mbit, 2.5MB or 5000pps", s)
	}
	n, err := strconv.ParseFloat(in[:i], 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("--rate %q: want a positive number, such as 20Mbit, 2.5MB or 5000pps", s)
	}
	unit := in[i:]
	mult := 1.0
	if len(unit) > 1 {
		switch unit[0] {
		case 'k', 'K':
			mult, unit = 1e3, unit[1:]
		case 'M', 'm':
			mult, unit = 1e6, unit[1:]
		case 'G', 'g':
			mult, unit = 1e9, unit[1:]
		}
	}
	switch strings.ToLower(unit) {
	case "bit":
		l.BytesPerSec = n * mult / 8
	case "b":
		if unit == "b" {
			return fmt.Errorf("--rate %q: say bit or B (bytes)", s)
		}
		l.BytesPerSec = n * mult
	case "pps", "pkt", "p":
		l.PacketsPerSec = n * mult
	default:
		return fmt.Errorf("--rate %q: unknown unit %q; use bit (20Mbit), B for bytes (2.5MB) or pps (5000pps)", s, unit)
	}
	if l.BytesPerSec > 0 && l.BytesPerSec < 1500 {
		return fmt.Errorf("--rate %q is below one packet per second", s)
	}
	return nil
}

// allow returns a check that admits packets within l, or nil when l
// limits nothing. It takes what a packet becomes on the wire (see
// tun.VnetHdr.Wire): a plain packet is one packet of its length, a GSO
// super-packet its segments and their bytes, each segment with its own
// copy of the headers. It is safe for concurrent use.
func (l RateLimit) allow() func(packets, bytes int) bool {
	if l.IsZero() {
		return nil
	}
	lim := l.limiter(time.Now())
	return func(packets, bytes int) bool { return lim.allowAt(time.Now(), packets, bytes) }
}

// limiter holds a RateLimit's buckets, nil where it sets no limit. Each
// holds a tenth of a second's worth, and at least 8 packets or two of
// the largest frames.
type limiter struct {
	mu             sync.Mutex
	packets, bytes *bucket
}

func (l RateLimit) limiter(now time.Time) *limiter {
	lim := new(limiter)
	if l.BytesPerSec > 0 {
		lim.bytes = newBucket(l.BytesPerSec, max(l.BytesPerSec/10, 2*MaxMTU), now)
	}
	if l.PacketsPerSec > 0 {
		lim.packets = newBucket(l.PacketsPerSec, max(l.PacketsPerSec/10, 8), now)
	}
	return lim
}

// allowAt reports whether what costs packets and bytes is within both
// limits at now, and takes it from both buckets if so, from neither if not.
func (lim *limiter) allowAt(now time.Time, packets, bytes int) bool {
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if !lim.packets.has(now, packets) || !lim.bytes.has(now, bytes) {
		return false
	}
	lim.packets.take(packets)
	lim.bytes.take(bytes)
	return true
}

// bucket is a token bucket that can go into debt. A cost no larger than
// the bucket needs that many tokens; a larger one (a super-packet of more
// segments than the bucket holds) needs a full bucket and leaves it owing
// the rest, which it pays back at the rate before it admits anything
// else. Either way no more than rate tokens a second pass in the long
// run, and a burst is at most a bucket and one super-packet.
type bucket struct {
	rate, size float64 // tokens a second; the most the bucket holds
	tokens     float64 // below zero: a debt
	last       time.Time
}

func newBucket(rate, size float64, now time.Time) *bucket {
	return &bucket{rate: rate, size: size, tokens: size, last: now}
}

// has fills b for the time since it last did, and reports whether it can
// pay cost. A nil bucket limits nothing.
func (b *bucket) has(now time.Time, cost int) bool {
	if b == nil {
		return true
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.size, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	return b.tokens >= min(float64(cost), b.size)
}

// take takes cost from b, into debt if need be.
func (b *bucket) take(cost int) {
	if b != nil {
		b.tokens -= float64(cost)
	}
}
