package tunnel

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// flowPacket is an IPv4 UDP packet of size bytes from port sport, with the
// ECN field ecn.
func flowPacket(sport uint16, size int, ecn byte) []byte {
	b := make([]byte, size)
	b[0] = 0x45
	b[1] = ecn
	binary.BigEndian.PutUint16(b[2:], uint16(size))
	b[8] = 64
	b[9] = 17
	copy(b[12:16], netip.MustParseAddr("198.18.0.1").AsSlice())
	copy(b[16:20], netip.MustParseAddr("198.18.0.2").AsSlice())
	binary.BigEndian.PutUint16(b[10:], ipv4Checksum(b[:20]))
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], 9)
	return b
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestQueueSparseFirst: a packet of a new, sparse flow (a ping) leaves
// ahead of a bulk flow's backlog.
func TestQueueSparseFirst(t *testing.T) {
	q := newFQCodel(nil)
	for range 100 {
		q.Enqueue(flowPacket(1000, 1400, 0), 2, 0, false, 0)
	}
	// The bulk flow has been served for a while: it is an old flow now.
	for range 10 {
		q.Dequeue(0)
	}
	q.Enqueue(flowPacket(2000, 84, 0), 2, 0, false, 0)
	for i := range 3 {
		p, ok := q.Dequeue(time.Millisecond)
		if !ok {
			t.Fatal("queue empty")
		}
		if binary.BigEndian.Uint16(p.b[20:]) == 2000 {
			return
		}
		if i == 2 {
			t.Fatal("the sparse flow's packet waited behind the bulk flow")
		}
	}
}

// TestQueueNoDropBelowTarget: a queue drained within the target drops
// nothing, however long it runs.
func TestQueueNoDropBelowTarget(t *testing.T) {
	q := newFQCodel(nil)
	now := time.Duration(0)
	for range 100000 {
		q.Enqueue(flowPacket(1000, 1400, 0), 2, 0, false, now)
		q.Enqueue(flowPacket(1000, 1400, 0), 2, 0, false, now)
		now += time.Millisecond
		for {
			if _, ok := q.Dequeue(now); !ok {
				break
			}
		}
	}
	if q.stats.Dropped+q.stats.Overflow+q.stats.Marked != 0 {
		t.Errorf("drops below the target: %+v", q.stats)
	}
}

// TestQueueSojournDrops: a standing queue (two packets in, one out, per
// millisecond) is cut by CoDel: it drops once packets have waited longer
// than the target for an interval, not before; ECN-capable packets are
// marked instead, with a valid checksum.
func TestQueueSojournDrops(t *testing.T) {
	for _, ecn := range []byte{0, 2} {
		q := newFQCodel(nil)
		now := time.Duration(0)
		var firstDrop time.Duration = -1
		for range 3000 {
			q.Enqueue(flowPacket(1000, 1400, ecn), 2, 0, false, now)
			q.Enqueue(flowPacket(1000, 1400, ecn), 2, 0, false, now)
			p, ok := q.Dequeue(now)
			if ok && ecn != 0 && p.b[1]&3 == 3 && binary.BigEndian.Uint16(p.b[10:]) != ipv4Checksum(p.b[:20]) {
				t.Fatal("a marked packet's checksum is wrong")
			}
			if firstDrop < 0 && q.stats.Dropped+q.stats.Marked > 0 {
				firstDrop = now
			}
			now += time.Millisecond
		}
		if firstDrop < codelInterval {
			t.Errorf("ecn %d: first drop at %v, before an interval above the target", ecn, firstDrop)
		}
		if ecn == 0 && (q.stats.Dropped == 0 || q.stats.Marked != 0) {
			t.Errorf("not ECN-capable: %+v", q.stats)
		}
		if ecn != 0 && (q.stats.Marked == 0 || q.stats.Dropped != 0) {
			t.Errorf("ECN-capable: %+v", q.stats)
		}
	}
}

// TestQueueResponsiveFlow: a flow that halves its rate at each drop and
// otherwise speeds up (as TCP does) settles with its packets waiting near
// CoDel's target, not for the whole backlog it would build on a plain
// queue.
func TestQueueResponsiveFlow(t *testing.T) {
	q := newFQCodel(nil)
	rate, credit := 1.0, 0.0 // packets per millisecond; the service is 1
	var drops uint64
	var sojourns []time.Duration
	for ms := range 20000 {
		now := time.Duration(ms) * time.Millisecond
		for credit += rate; credit >= 1; credit-- {
			q.Enqueue(flowPacket(1000, 1400, 0), 2, 0, false, now)
		}
		if p, ok := q.Dequeue(now); ok && ms > 10000 {
			sojourns = append(sojourns, now-p.at)
		}
		if d := q.stats.Dropped; d > drops {
			drops, rate = d, max(rate/2, 0.1)
		} else {
			rate += 0.002
		}
	}
	var sum time.Duration
	for _, s := range sojourns {
		sum += s
	}
	mean := sum / time.Duration(len(sojourns))
	t.Logf("mean sojourn %v, %d drops", mean, drops)
	if mean > 4*codelTarget {
		t.Errorf("mean sojourn %v in steady state, want near the %v target", mean, codelTarget)
	}
	if drops == 0 {
		t.Error("no drops")
	}
}

// TestQueueOverflow: a full queue drops from its fattest flow, not from a
// small one.
func TestQueueOverflow(t *testing.T) {
	freed := 0
	q := newFQCodel(func([]byte) { freed++ })
	q.limit = 100 * 1400
	q.Enqueue(flowPacket(2000, 84, 0), 2, 0, false, 0)
	for range 200 {
		q.Enqueue(flowPacket(1000, 1400, 0), 2, 0, false, 0)
	}
	if q.stats.Overflow == 0 || uint64(freed) != q.stats.Overflow || q.Len() > q.limit {
		t.Errorf("overflow %d, freed %d, %d bytes queued (limit %d)", q.stats.Overflow, freed, q.Len(), q.limit)
	}
	p, ok := q.Dequeue(0)
	if !ok || binary.BigEndian.Uint16(p.b[20:]) != 2000 {
		t.Error("the small flow lost its packet to the fat flow's overflow")
	}
}

func TestFlowHash(t *testing.T) {
	a, b := flowPacket(1000, 100, 0), flowPacket(1001, 100, 0)
	if flowHash(a, 0) == flowHash(b, 0) {
		t.Error("two ports, one hash")
	}
	if flowHash(a, 0) != flowHash(flowPacket(1000, 1400, 0), 0) {
		t.Error("one flow, two hashes")
	}
	if flowHash([]byte{0x45}, 0) != 0 || flowHash(a, -1) != 0 {
		t.Error("a short or non-IP packet was hashed")
	}
}
