package tunnel

import (
	"sync"
	"time"

	"github.com/sshvpn/sshvpn/policy"
)

// RateLimit caps one direction of a session's traffic (see
// policy.RateLimit); Guard applies it.
type RateLimit = policy.RateLimit

// allow returns a check that admits packets within l, or nil when l
// limits nothing. It takes what a packet becomes on the wire (see
// tun.VnetHdr.Wire): a plain packet is one packet of its length, a GSO
// super-packet its segments and their bytes, each segment with its own
// copy of the headers. It is safe for concurrent use.
func allow(l RateLimit) func(packets, bytes int) bool {
	if l.IsZero() {
		return nil
	}
	lim := newLimiter(l, time.Now())
	return func(packets, bytes int) bool { return lim.allowAt(time.Now(), packets, bytes) }
}

// limiter holds a RateLimit's buckets, nil where it sets no limit. Each
// holds a tenth of a second's worth, and at least 8 packets or two of
// the largest frames.
type limiter struct {
	mu             sync.Mutex
	packets, bytes *bucket
}

func newLimiter(l RateLimit, now time.Time) *limiter {
	lim := new(limiter)
	if l.BytesPerSec > 0 {
		lim.bytes = newBucket(l.BytesPerSec, max(l.BytesPerSec/10, 2*policy.MaxMTU), now)
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
