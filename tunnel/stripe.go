package tunnel

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

// A Stripe spreads the flows of one multi-queue device evenly over the
// links of its queues (the streams of a striped tunnel). Left to itself,
// the kernel puts a new flow on a queue by its hash, and four flows land
// on four queues together only one time in ten: the others share, and a
// stream that carries two flows gives each half of one SSH window. So the
// side that opens flows places each new one on the stream that carries
// the fewest: when a link reads a packet of a flow placed on another
// stream, it hands the packet over. That happens for a flow's first round
// trip only: the far side writes the flow's packets into its own queue of
// that stream, the kernel there sends the answers back through the same
// queue, and once they are written here, into this stream's queue, the
// kernel learns the flow's queue (tun.c's flow table) and reads its next
// packets from it. A flow stays on its stream while it is active; a flow
// whose stream is down moves to another, as the kernel moves it.
//
// Pings and DNS (see sparse) are not placed: each packet rides the
// stream that carried the fewest bytes lately, so that while there are
// fewer downloads than streams, a ping never waits behind a download's
// repairs on the same TCP connection (a hole in the outer stream holds
// everything behind it for a round trip or more). Such packets are
// independent of each other, and a move reorders nothing that matters.
// When the peer takes second copies (its Hello says Twice), a ping or a
// DNS datagram goes over a second stream too, the next quietest, as a
// Copy frame: a segment lost on a nearly idle TCP connection waits for
// the tail-loss probe, some 150 ms at 40 ms RTT, and the copy on the
// other stream arrives meanwhile. The receiving side writes whichever of
// the two comes first (see again).
//
// Only the client places flows (StripeConfig.Place): the server's kernel
// already answers each flow on the queue it came in on, and two sides
// placing the same flow on different streams would toss it to and fro.
// The server's stripe only sends pings and DNS twice and drops copies.
type Stripe struct {
	links [framing.MaxStreams]atomic.Pointer[member]
	n     atomic.Int32 // links added
	start time.Time
	cfg   StripeConfig
	twice atomic.Bool // the peer drops second copies: send sparse packets twice
	mu    sync.Mutex  // placing a flow
	// flows are the flows seen lately, by their hash: the stream each
	// rides (plus one; zero: none) in the low byte, and when it was last
	// seen, in milliseconds since start, above it. Flows whose hashes
	// collide share a cell, and so a stream.
	flows [stripeCells]atomic.Uint64

	// The quiet streams, which sparse packets ride: the quietest's index
	// plus one in the low byte, the next's above it, and when they were
	// chosen (ms since start) above both; and each stream's byte count
	// then.
	quietMu sync.Mutex
	quiet   atomic.Uint64
	bytes   [framing.MaxStreams]uint64

	// The last copies of sparse packets from the peer: a hash of each,
	// and when it came.
	seenMu sync.Mutex
	seen   [stripeSeen]struct {
		h      uint64
		at     time.Duration // 0: none, or matched already
		second bool          // it came as a Copy frame
	}
	seenN int
}

// StripeConfig configures a Stripe.
type StripeConfig struct {
	Mode tun.Mode // the device's
	// Place says that this side places new flows on streams: the
	// client's.
	Place bool
}

const (
	stripeCells = 4096
	// stripeIdle is how long a flow keeps its stream without a packet.
	stripeIdle = 10 * time.Second
	// stripeActive is how recently a flow must have been seen to count
	// against its stream when a new flow is placed.
	stripeActive = 2 * time.Second
	// stripeTouch is how stale a cell's time may grow before a packet
	// renews it: not a store per packet.
	stripeTouch = 100 * time.Millisecond
	// stripeQuiet is how long the quiet streams stay chosen.
	stripeQuiet = 100 * time.Millisecond
	// stripeSeen is how many sparse packets from the peer are
	// remembered, for stripeTwice at most: a second copy that comes
	// later is written again (a duplicate, which IP allows).
	stripeSeen  = 64
	stripeTwice = time.Second
)

// NewStripe makes an empty stripe; links join it through
// LinkConfig.Stripe.
func NewStripe(cfg StripeConfig) *Stripe { return &Stripe{start: time.Now(), cfg: cfg} }

// add makes l one of the stripe's streams.
func (s *Stripe) add(l stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int(s.n.Load())
	if n == len(s.links) {
		return // more queues than streams can be: the kernel spreads those
	}
	s.links[n].Store(&member{l})
	s.n.Store(int32(n + 1))
}

func (s *Stripe) now() uint64 { return uint64(time.Since(s.start) / time.Millisecond) }

// route is the link whose stream carries packet b, which l read from
// its queue: l itself unless the packet's flow was placed elsewhere, or
// it is sparse; and the link that carries a second copy, if any. A
// packet that is not IP (ARP, say) stays where the kernel put it.
func (s *Stripe) route(l stream, vnet bool, b []byte) (to, twin stream) {
	ip := ipAt(b, vnet, s.cfg.Mode == tun.ModeTAP)
	h := flowHash(b, ip)
	if h == 0 {
		return l, nil
	}
	now := s.now()
	if sparse(b, ip) {
		q, q2 := s.quietest(now)
		if s.cfg.Place && q != nil {
			to = q
		} else {
			to = l // where the kernel put it: the server answers there
		}
		if s.twice.Load() {
			if twin = q; twin == to {
				twin = q2
			}
		}
		return to, twin
	}
	if !s.cfg.Place {
		return l, nil
	}
	cell := &s.flows[h%stripeCells]
	if v := cell.Load(); v != 0 {
		i, seen := int(v&0xff)-1, v>>8
		// (Another link may have stored a later time since now was
		// read: that flow is fresh, not idle.)
		if (seen > now || now-seen < uint64(stripeIdle/time.Millisecond)) && i < len(s.links) {
			if t := s.linkAt(i); t != nil && t.Attached() {
				if seen < now && now-seen >= uint64(stripeTouch/time.Millisecond) {
					cell.Store(now<<8 | v&0xff)
				}
				return t, nil
			}
		}
	}
	return s.place(l, cell, now), nil
}

// place puts a new flow (or one whose stream is down) on the stream with
// the fewest active flows; of those, on the first.
func (s *Stripe) place(l stream, cell *atomic.Uint64, now uint64) stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int(s.n.Load())
	var count [framing.MaxStreams]int
	active := uint64(stripeActive / time.Millisecond)
	for i := range s.flows {
		if v := s.flows[i].Load(); v != 0 && (v>>8 > now || now-v>>8 < active) {
			if j := int(v&0xff) - 1; j < n {
				count[j]++
			}
		}
	}
	best := -1
	for i := range n {
		if t := s.linkAt(i); t != nil && t.Attached() && (best < 0 || count[i] < count[best]) {
			best = i
		}
	}
	if best < 0 {
		return l // no stream is up: l drops it and counts
	}
	cell.Store(now<<8 | uint64(best+1))
	return s.linkAt(best)
}

// quietest is the stream that carried the fewest bytes (both ways) since
// it was last chosen, at most every stripeQuiet, and the next quietest;
// another replaces the quietest only when it carried less than half as
// much. Nil: not so many are up.
func (s *Stripe) quietest(now uint64) (stream, stream) {
	if q := s.quiet.Load(); q != 0 && now-q>>16 < uint64(stripeQuiet/time.Millisecond) {
		t, t2 := s.linkAt(int(q&0xff)-1), s.linkAt(int(q>>8&0xff)-1)
		if t != nil && t.Attached() && (t2 == nil || t2.Attached()) {
			return t, t2
		}
	}
	s.quietMu.Lock()
	defer s.quietMu.Unlock()
	cur := -1
	if q := s.quiet.Load(); q != 0 {
		cur = int(q&0xff) - 1
	}
	best, next := -1, -1
	var moved [framing.MaxStreams]uint64
	for i := range int(s.n.Load()) {
		t := s.linkAt(i)
		if t == nil {
			continue
		}
		b := t.Stats().BytesOut.Load() + t.Stats().BytesIn.Load()
		moved[i], s.bytes[i] = b-s.bytes[i], b
		if !t.Attached() {
			continue
		}
		switch {
		case best < 0 || moved[i] < moved[best]:
			best, next = i, best
		case next < 0 || moved[i] < moved[next]:
			next = i
		}
	}
	if best < 0 {
		s.quiet.Store(0)
		return nil, nil
	}
	if t := s.linkAt(cur); cur != best && t != nil && t.Attached() && moved[cur] <= 2*moved[best] {
		best, next = cur, best // not worth a move
	}
	s.quiet.Store(now<<16 | uint64(next+1)<<8 | uint64(best+1))
	return s.linkAt(best), s.linkAt(next)
}

// linkAt is stream i, if there is one.
func (s *Stripe) linkAt(i int) stream {
	if i < 0 || i >= len(s.links) {
		return nil
	}
	if m := s.links[i].Load(); m != nil {
		return m.s
	}
	return nil
}

// stream is a link as its stripe sees it: whether a connection is
// attached to it, and its counters.
type stream interface {
	Attached() bool
	Stats() *Stats
}

// member holds a stream, for an atomic pointer.
type member struct{ s stream }

// sparse reports whether the IP packet at b[ip:] is one that rides the
// quiet streams, twice: a ping (ICMP, ICMPv6) of at most sparseMax
// bytes, or a DNS datagram (UDP, port 53 either way) of at most
// sparseDNS. (Not DNS over TCP, a flow like any other: moved from stream
// to stream it would be reordered; nor larger datagrams, which may be
// another tunnel run over port 53.)
func sparse(b []byte, ip int) bool {
	if ip < 0 || len(b) < ip+20 {
		return false
	}
	pkt := b[ip:]
	proto, _, l4, ok := ipTransport(pkt)
	if !ok {
		return false
	}
	switch proto {
	case 1, 58: // ICMP, ICMPv6
		return len(pkt) <= sparseMax
	case 17:
		return len(pkt) <= sparseDNS && l4 != nil && (binary.BigEndian.Uint16(l4) == 53 || binary.BigEndian.Uint16(l4[2:]) == 53)
	}
	return false
}

// The largest packets sparse takes.
const (
	sparseMax = 1280 // IPv6's minimum MTU: a ping of any common size
	sparseDNS = 512  // a query, or a classic answer
)

// again reports whether pkt, a packet from the peer, is the second copy
// of one sent over two streams: one came as a Data or Offload frame and
// the other as a Copy frame (second), within stripeTwice. The first is
// remembered, so that only a pair matches: a ping's or a query's own
// retransmission, equal to the first, is written again.
func (s *Stripe) again(pkt []byte, second bool) bool {
	if !second && !sparse(pkt, ipAt(pkt, false, s.cfg.Mode == tun.ModeTAP)) {
		return false
	}
	h := uint64(14695981039346656037)
	for _, c := range pkt {
		h = (h ^ uint64(c)) * 1099511628211
	}
	now := max(time.Since(s.start), 1)
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	for i := range s.seen {
		if e := &s.seen[i]; e.h == h && e.at != 0 && now-e.at < stripeTwice && e.second != second {
			e.at = 0 // matched: a third is another packet
			return true
		}
	}
	e := &s.seen[s.seenN%stripeSeen]
	e.h, e.at, e.second = h, now, second
	s.seenN++
	return false
}
