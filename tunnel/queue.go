package tunnel

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

// The queue's parameters. The interval is CoDel's (RFC 8289) for the
// Internet at large; the target is 10 ms rather than 5: measured at 40 ms
// RTT in the lab, 5 ms dropped so often that an inner TCP flow lost a
// fifth of its rate, and a flow's own packets are all that wait here (a
// sparse flow goes first). The limit bounds memory, not latency (CoDel
// does that), and is a few hundred milliseconds at the rates an SSH
// connection carries.
const (
	codelTarget   = 10 * time.Millisecond
	codelInterval = 100 * time.Millisecond
	queueLimit    = 8 << 20 // bytes queued, all flows together
	queueFlows    = 1024    // flow buckets
	queueQuantum  = 1514    // bytes a flow may send per round (fq_codel's)
	// fifoSojourn: while the oldest packet has waited less than this,
	// there is no queue to manage and packets leave in the order they
	// came, whatever their flows.
	fifoSojourn = time.Millisecond
)

// pumpQueueTarget is the CoDel target of a pump's queue: codelTarget,
// but for the pump's own tests, whose senders do not slow down.
var pumpQueueTarget = codelTarget

// queued is one packet waiting in the queue: a frame's type and payload,
// the offset of its IP header in the payload (behind a virtio-net header,
// or none in tap mode: -1), and when it came.
type queued struct {
	b      []byte
	typ    uint8
	ip     int
	framed bool // b has the frame header's room in front of the payload
	at     time.Duration
	size   int    // the payload's
	seq    uint64 // the order of arrival
}

// arrival is a packet's place in the order of arrival: its flow and
// sequence number.
type arrival struct {
	flow int
	seq  uint64
}

// ring is a FIFO of ints or arrivals that keeps its storage.
type ring[T any] struct {
	buf        []T
	head, size int
}

func (r *ring[T]) len() int { return r.size }

func (r *ring[T]) push(v T) {
	if r.size == len(r.buf) {
		n := make([]T, max(16, 2*len(r.buf)))
		for i := range r.size {
			n[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = n, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring[T]) front() T { return r.buf[r.head] }

func (r *ring[T]) pop() T {
	v := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}

// QueueStats counts what the queue did to packets on their way to the
// peer.
type QueueStats struct {
	Dropped  uint64 // by CoDel: a flow's packets waited too long
	Marked   uint64 // CE-marked instead (ECN-capable flows)
	Overflow uint64 // dropped from the fattest flow: the queue was full
}

// flowQueue is one flow's packets, with its CoDel state.
type flowQueue struct {
	pkts    []queued // a FIFO: pkts[head:]
	head    int
	bytes   int
	deficit int
	list    int // which list the flow is on: 0 none, 1 new, 2 old

	// CoDel
	dropping       bool
	count          int
	lastCount      int
	firstAboveTime time.Duration
	dropNext       time.Duration
}

func (f *flowQueue) len() int { return len(f.pkts) - f.head }

func (f *flowQueue) push(p queued) {
	if f.head > 0 && len(f.pkts) == cap(f.pkts) {
		n := copy(f.pkts, f.pkts[f.head:])
		clear(f.pkts[n:])
		f.pkts, f.head = f.pkts[:n], 0
	}
	f.pkts = append(f.pkts, p)
	f.bytes += p.size
}

func (f *flowQueue) pop() (queued, bool) {
	if f.len() == 0 {
		return queued{}, false
	}
	p := f.pkts[f.head]
	f.pkts[f.head] = queued{}
	f.head++
	if f.head == len(f.pkts) {
		f.pkts, f.head = f.pkts[:0], 0
	}
	f.bytes -= p.size
	return p, true
}

// fqCodel is sshvpn's own queue for packets to the peer: flow queueing
// with CoDel, as Linux's fq_codel (RFC 8290). Packets are hashed by flow
// (addresses, protocol, ports) into buckets; a flow that just became
// active (a ping, a DNS query, an interactive keystroke) is served before
// the flows that have been sending, and bulk flows share the rest by
// deficit round robin. Each flow's queue is managed by CoDel on the time
// its packets waited: once they have waited longer than the target for an
// interval, CoDel drops (or, for ECN-capable packets, marks) at a rising
// rate until the flow slows down. A full queue drops from its fattest flow.
//
// While there is no queue to speak of (the oldest packet has waited less
// than fifoSojourn), packets leave in the order they came: flows are
// reordered against each other only when that saves a sparse flow from
// waiting behind a backlog.
//
// It is not safe for concurrent use; the pump locks it.
type fqCodel struct {
	flows    [queueFlows]flowQueue
	newFlows ring[int]
	oldFlows ring[int]
	arrivals ring[arrival] // every queued packet, in order (and stale ones)
	seq      uint64
	bytes    int
	limit    int
	target   time.Duration // CoDel's
	stats    QueueStats
	free     func([]byte) // takes back a dropped packet's buffer
}

func newFQCodel(free func([]byte)) *fqCodel {
	if free == nil {
		free = func([]byte) {}
	}
	return &fqCodel{limit: queueLimit, target: codelTarget, free: free}
}

// Len is the bytes queued.
func (q *fqCodel) Len() int { return q.bytes }

// Enqueue queues packet b (a frame of type typ, with its IP header at ip,
// -1 for none; with framed, b has the frame header's room in front of the
// payload), arrived at now. The queue owns b until Dequeue returns it or
// it is dropped (given to free).
func (q *fqCodel) Enqueue(b []byte, typ uint8, ip int, framed bool, now time.Duration) {
	i := int(flowHash(b, ip) % queueFlows)
	f := &q.flows[i]
	q.seq++
	size := len(b)
	if framed {
		size -= framing.HeaderLen
	}
	f.push(queued{b: b, typ: typ, ip: ip, framed: framed, at: now, size: size, seq: q.seq})
	q.arrivals.push(arrival{i, q.seq})
	q.bytes += size
	if f.list == 0 {
		f.list = 1
		f.deficit = queueQuantum
		q.newFlows.push(i)
	}
	for q.bytes > q.limit {
		q.dropFattest()
	}
}

// dropFattest drops the head packet of the flow with the most bytes.
func (q *fqCodel) dropFattest() {
	fat, most := -1, 0
	for i := range q.flows {
		if q.flows[i].bytes > most {
			fat, most = i, q.flows[i].bytes
		}
	}
	if fat < 0 {
		return
	}
	if p, ok := q.flows[fat].pop(); ok {
		q.bytes -= p.size
		q.stats.Overflow++
		q.free(p.b)
	}
}

// Dequeue returns the next packet to send at now, or false when the queue
// is empty.
func (q *fqCodel) Dequeue(now time.Duration) (queued, bool) {
	// The oldest packet still queued: arrivals of packets that left out
	// of order, or were dropped, are stale.
	for q.arrivals.len() > 0 {
		a := q.arrivals.front()
		if f := &q.flows[a.flow]; f.len() > 0 && f.pkts[f.head].seq == a.seq {
			if now-f.pkts[f.head].at < fifoSojourn {
				q.arrivals.pop()
				p, _ := q.pop(f)
				f.shouldDrop(p, now, q.target) // keeps CoDel's state current
				f.dropping = false
				return p, true
			}
			break
		}
		q.arrivals.pop()
	}
	for {
		var list *ring[int]
		switch {
		case q.newFlows.len() > 0:
			list = &q.newFlows
		case q.oldFlows.len() > 0:
			list = &q.oldFlows
		default:
			return queued{}, false
		}
		i := list.front()
		f := &q.flows[i]
		if f.deficit <= 0 {
			f.deficit += queueQuantum
			list.pop()
			f.list = 2
			q.oldFlows.push(i)
			continue
		}
		p, ok := q.codelDequeue(f, now)
		if !ok {
			list.pop()
			if list == &q.newFlows && q.oldFlows.len() > 0 {
				// RFC 8290: an emptied new flow goes to the old list,
				// so that it cannot come back as new at once.
				f.list = 2
				q.oldFlows.push(i)
			} else {
				f.list = 0
			}
			continue
		}
		f.deficit -= p.size
		return p, true
	}
}

// codelDequeue is CoDel's dequeue for one flow (RFC 8289's pseudocode).
func (q *fqCodel) codelDequeue(f *flowQueue, now time.Duration) (queued, bool) {
	p, ok := q.pop(f)
	if !ok {
		f.dropping = false
		return p, false
	}
	okToDrop := f.shouldDrop(p, now, q.target)
	if f.dropping {
		if !okToDrop {
			f.dropping = false
		}
		for f.dropping && now >= f.dropNext {
			if q.mark(p) {
				f.count++
				f.dropNext = controlLaw(f.dropNext, f.count)
				return p, true
			}
			q.drop(p)
			f.count++
			if p, ok = q.pop(f); !ok {
				f.dropping = false
				return p, false
			}
			if !f.shouldDrop(p, now, q.target) {
				f.dropping = false
			} else {
				f.dropNext = controlLaw(f.dropNext, f.count)
			}
		}
		return p, true
	}
	if okToDrop {
		marked := q.mark(p)
		if !marked {
			q.drop(p)
			if p, ok = q.pop(f); !ok {
				// RFC 8289 enters the dropping state here too.
				p = queued{}
			}
		}
		f.dropping = true
		delta := f.count - f.lastCount
		f.count = 1
		if delta > 1 && now-f.dropNext < 16*codelInterval {
			f.count = delta
		}
		f.dropNext = controlLaw(now, f.count)
		f.lastCount = f.count
		if !marked && !ok {
			return p, false
		}
	}
	return p, true
}

func (q *fqCodel) pop(f *flowQueue) (queued, bool) {
	p, ok := f.pop()
	if ok {
		q.bytes -= p.size
	}
	return p, ok
}

func (q *fqCodel) drop(p queued) {
	q.stats.Dropped++
	q.free(p.b)
}

// mark sets CE on an ECN-capable packet and reports whether it did.
func (q *fqCodel) mark(p queued) bool {
	if markCE(p.b, p.ip) {
		q.stats.Marked++
		return true
	}
	return false
}

// shouldDrop is CoDel's check of one packet's sojourn time: true once
// packets have waited longer than the target for a whole interval.
func (f *flowQueue) shouldDrop(p queued, now, target time.Duration) bool {
	if now-p.at < target || f.bytes <= queueQuantum {
		f.firstAboveTime = 0
		return false
	}
	if f.firstAboveTime == 0 {
		f.firstAboveTime = now + codelInterval
		return false
	}
	return now >= f.firstAboveTime
}

// controlLaw is CoDel's next drop time: drops come closer together as
// the square root of their count.
func controlLaw(t time.Duration, count int) time.Duration {
	return t + time.Duration(float64(codelInterval)/math.Sqrt(float64(count)))
}

// flowHash hashes a packet's flow: addresses, protocol and, for TCP, UDP
// and SCTP of an unfragmented packet, the ports (FNV-1a). Packets that
// are not IP (ip < 0, or too short) share bucket 0.
func flowHash(b []byte, ip int) uint32 {
	if ip < 0 || len(b) < ip+20 {
		return 0
	}
	proto, addrs, l4, ok := ipTransport(b[ip:])
	if !ok {
		return 0
	}
	h := uint32(2166136261)
	add := func(p []byte) {
		for _, c := range p {
			h = (h ^ uint32(c)) * 16777619
		}
	}
	add(addrs)
	add([]byte{proto})
	if proto == 6 || proto == 17 || proto == 132 {
		add(l4[:min(4, len(l4))])
	}
	return h
}

// ipAt is the offset of the IP header in a packet as a device reads or
// writes it: behind a virtio-net header (vnet), behind an Ethernet header
// in tap mode; -1 for what is not IP.
func ipAt(b []byte, vnet, tap bool) int {
	ip := 0
	if vnet {
		ip = tun.VnetHdrLen
	}
	if tap {
		if len(b) < ip+14 {
			return -1
		}
		switch binary.BigEndian.Uint16(b[ip+12:]) {
		case 0x0800, 0x86dd:
			ip += 14
		default:
			return -1
		}
	}
	return ip
}

// ipTransport reads the IP packet pkt (at least 20 bytes): its protocol,
// its addresses, and what follows its header, if that holds a transport
// header's first 4 bytes (nil for a later fragment, or a packet cut
// short); not ok for what is not IPv4 or IPv6.
func ipTransport(pkt []byte) (proto byte, addrs, l4 []byte, ok bool) {
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if frag := binary.BigEndian.Uint16(pkt[6:8]) & 0x1fff; frag == 0 && ihl >= 20 && len(pkt) >= ihl+4 {
			l4 = pkt[ihl:]
		}
		return pkt[9], pkt[12:20], l4, true
	case 6:
		if len(pkt) < 40 {
			return 0, nil, nil, false
		}
		if len(pkt) >= 44 {
			l4 = pkt[40:]
		}
		return pkt[6], pkt[8:40], l4, true
	}
	return 0, nil, nil, false
}

// markCE sets Congestion Experienced on an ECN-capable IP packet (ECT(0)
// or ECT(1)) whose header starts at b[ip:], mending the IPv4 header
// checksum; false for a packet that is not ECN-capable, or not IP.
func markCE(b []byte, ip int) bool {
	if ip < 0 || len(b) < ip+20 {
		return false
	}
	pkt := b[ip:]
	switch pkt[0] >> 4 {
	case 4:
		ecn := pkt[1] & 3
		if ecn == 0 || ecn == 3 {
			return false
		}
		old := binary.BigEndian.Uint16(pkt[0:2])
		pkt[1] |= 3
		// RFC 1624: HC' = ~(~HC + ~m + m')
		sum := uint32(^binary.BigEndian.Uint16(pkt[10:12])) + uint32(^old) + uint32(binary.BigEndian.Uint16(pkt[0:2]))
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(pkt[10:12], ^uint16(sum))
		return true
	case 6:
		if len(pkt) < 40 {
			return false
		}
		ecn := (pkt[1] >> 4) & 3
		if ecn == 0 || ecn == 3 {
			return false
		}
		pkt[1] |= 3 << 4
		return true
	}
	return false
}
