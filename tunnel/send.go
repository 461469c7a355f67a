package tunnel

import (
	"time"

	"github.com/sshvpn/sshvpn/framing"
)

// The way out of a pump: the link's device reader queues each packet
// (the pump is its sink), and the pump's sender takes them from the queue,
// fattest flows last, and writes them to the transport as frames, one
// write per burst, while the pacer lets more be in flight.

// The pump is its link's sink (see sink): the device reader reads each
// packet into cur and queues it.

// A large buffer keeps HeaderLen bytes of room in front of the packet, so
// that the sender writes its frame without copying it (WriteFramed).

func (p *pump) next(n int) ([]byte, error) {
	room := p.cur[framing.HeaderLen:]
	return room[:min(n, len(room))], nil
}

func (p *pump) commit(typ framing.Type, n int) error {
	if n <= smallBuf {
		b := p.bufs.getSmall()[:n]
		copy(b, p.cur[framing.HeaderLen:framing.HeaderLen+n])
		p.enqueue(typ, b, false)
		return nil
	}
	b := p.cur[:framing.HeaderLen+n]
	p.cur = p.bufs.getLarge()
	p.enqueue(typ, b, true)
	return nil
}

func (p *pump) put(typ framing.Type, payload []byte) bool {
	if len(payload) <= smallBuf {
		b := p.bufs.getSmall()[:len(payload)]
		copy(b, payload)
		p.enqueue(typ, b, false)
		return true
	}
	b := p.bufs.getLarge()[:framing.HeaderLen+len(payload)]
	copy(b[framing.HeaderLen:], payload)
	p.enqueue(typ, b, true)
	return true
}

// putCopy queues a Copy frame of a packet that another stream carries
// too (see Stripe): typ, then payload. False: too large for one.
func (p *pump) putCopy(typ framing.Type, payload []byte) bool {
	if 1+len(payload) > min(smallBuf, framing.MaxCopyPayload) {
		return false
	}
	b := p.bufs.getSmall()[:1+len(payload)]
	b[0] = byte(typ)
	copy(b[1:], payload)
	p.enqueue(framing.TypeCopy, b, false)
	return true
}

// flush wakes the sender: the device has nothing more for now.
func (p *pump) flush() { wake(p.wake) }

// enqueue queues one frame's payload for the sender: b is the payload,
// or with framed the payload behind HeaderLen bytes of room.
func (p *pump) enqueue(typ framing.Type, b []byte, framed bool) {
	ip := p.ipOffset(typ, b)
	if framed && ip >= 0 {
		ip += framing.HeaderLen
	}
	p.qmu.Lock()
	p.q.Enqueue(b, uint8(typ), ip, framed, time.Since(p.start))
	p.syncQueueStats()
	n := p.q.Len()
	p.qmu.Unlock()
	// The reader wakes the sender once per burst (flush), as the device
	// runs dry, and in a long burst every wakeEvery bytes: a handoff per
	// packet cost a fifth of the throughput on a veth.
	if n >= wakeEvery {
		wake(p.wake)
	}
}

// ipOffset is where the IP header starts in the payload b of a frame of
// type typ: behind a virtio-net header, an Ethernet header in tap mode,
// or a Copy frame's type byte; -1 for none.
func (p *pump) ipOffset(typ framing.Type, b []byte) int {
	if typ == framing.TypeCopy {
		if len(b) == 0 {
			return -1
		}
		if ip := p.ipOffset(framing.Type(b[0]), b[1:]); ip >= 0 {
			return 1 + ip
		}
		return -1
	}
	return ipAt(b, typ == framing.TypeOffload, p.tap)
}

// wakeEvery is how much a burst queues before the sender is woken anyway.
const wakeEvery = 256 << 10

// syncQueueStats adds what the queue did since the last call to the
// link's counters. p.qmu is held.
func (p *pump) syncQueueStats() {
	s := p.q.stats
	if s == p.qseen {
		return
	}
	p.stats.QueueDropped.Add(s.Dropped - p.qseen.Dropped)
	p.stats.QueueMarked.Add(s.Marked - p.qseen.Marked)
	p.stats.QueueOverflow.Add(s.Overflow - p.qseen.Overflow)
	p.qseen = s
}

// send writes what is queued to the transport whenever it is woken (a
// packet queued, an Ack came), until the pump stops.
func (p *pump) send() {
	for {
		select {
		case <-p.wake:
		case <-p.done:
			return
		}
		if err := p.drain(); err != nil {
			p.fail(err)
			return
		}
	}
}

// drain writes queued packets while the pacer lets them go, and flushes
// once the queue is empty or the pacer holds it.
func (p *pump) drain() error {
	if p.paced {
		// Once per drain, not per packet: the loss meter's word, and
		// CoDel's target, which depends on it.
		p.pace.outer = p.outer.Load()
		target := p.queueTarget()
		p.qmu.Lock()
		p.q.target = target
		p.qmu.Unlock()
	}
	for {
		now := time.Since(p.start)
		if p.paced {
			acked := p.acked.Load()
			p.pace.acked(acked, p.sentBytes, now)
			if lim := p.pace.limit(); lim > 0 && p.sentBytes-acked >= lim {
				p.pace.held(now)
				break // until an Ack wakes the sender
			}
		}
		p.qmu.Lock()
		pk, ok := p.q.Dequeue(now)
		p.syncQueueStats()
		p.qmu.Unlock()
		if !ok {
			if p.paced {
				p.pace.appLimited(p.sentBytes)
			}
			break
		}
		var err error
		if pk.framed {
			// A large buffer: the frame goes out from where it was
			// read, behind what is buffered.
			err = p.dw.WriteFramed(framing.Type(pk.typ), pk.b)
			if err == nil && p.paced {
				p.pace.sent(p.sentBytes+uint64(len(pk.b)-framing.HeaderLen), time.Since(p.start))
			}
			p.bufs.put(pk.b)
		} else {
			if p.dw.Available() < framing.HeaderLen+len(pk.b) {
				if err := p.flushData(); err != nil {
					return err
				}
			}
			err = p.dw.WriteFrame(framing.Type(pk.typ), pk.b)
			p.bufs.put(pk.b)
		}
		if err != nil {
			return err
		}
		if framing.Type(pk.typ) == framing.TypeCopy {
			continue // the peer's Acks count Data and Offload frames
		}
		p.sentBytes += uint64(pk.size)
	}
	return p.flushData()
}

// queueTarget is CoDel's target for the queue now: pumpQueueTarget, or
// on a lossy path (where the pacer steps aside) two round trips. There
// the outer TCP's repairs stall the pipe to ssh again and again, a round
// trip each; what waits in sshvpn's queue meanwhile is not a standing
// queue that a drop would cure, and a drop halves an inner flow's window
// for nothing. (At 40 ms and 1% loss the 10 ms target dropped 2 to 40
// packets in an 8 s download, two round trips none; the throughput
// varied from run to run either way, 0.3 to 0.6 of direct TCP, as the
// inner flow's window did.)
func (p *pump) queueTarget() time.Duration {
	if p.pace.lossy() {
		return max(pumpQueueTarget, 2*p.pace.minRTT)
	}
	return pumpQueueTarget
}

// flushData writes the data frames buffered and tells the pacer.
func (p *pump) flushData() error {
	if p.dw.Buffered() == 0 {
		return nil
	}
	if err := p.dw.Flush(); err != nil {
		return err
	}
	if p.paced {
		// The mark is taken once the bytes are in the transport: a
		// write that waited for room is not the path's round trip.
		p.pace.sent(p.sentBytes, time.Since(p.start))
	}
	return nil
}
