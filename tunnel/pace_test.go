package tunnel

import (
	"testing"
	"time"
)

// TestPacerInactive: without Acks (an older peer) nothing is limited.
func TestPacerInactive(t *testing.T) {
	var p pacer
	p.sent(1<<20, time.Millisecond)
	if p.limit() != 0 {
		t.Errorf("limit %d before any Ack", p.limit())
	}
}

// TestPacerConverges: over a simulated path (a bottleneck of rate with a
// one-way delay each way, Acks coming back), a sender kept within the
// pacer's limit fills the bottleneck and keeps what is in flight near the
// path's bandwidth-delay product, not at what it would send unchecked.
func TestPacerConverges(t *testing.T) {
	for _, c := range []struct {
		mbps float64
		rtt  time.Duration
	}{{160, 40 * time.Millisecond}, {140, 100 * time.Millisecond}, {2000, 400 * time.Microsecond}} {
		step := 100 * time.Microsecond
		perStep := c.mbps * 1e6 / 8 * step.Seconds() // bytes the bottleneck serves per step
		delaySteps := int(c.rtt / 2 / step)
		var p pacer
		p.start(0)
		var sent, served, acked uint64
		var queue float64             // bytes waiting at the bottleneck
		arrivals := make([]uint64, 0) // bytes received at the peer, per step, delayed
		ackLine := make([]uint64, 0)  // cumulative received, on its way back
		var received uint64
		var maxInflight uint64
		total := int(5 * time.Second / step)
		var deliveredLate uint64
		for i := range total {
			now := time.Duration(i) * step
			// The sender: within the limit, or 8 MiB unchecked.
			lim := p.limit()
			if lim == 0 {
				lim = 8 << 20
			}
			for sent-acked < lim {
				sent += 16 << 10
				queue += 16 << 10
			}
			p.sent(sent, now)
			if i > total/2 {
				maxInflight = max(maxInflight, sent-acked)
			}
			// The bottleneck serves, the wire delays.
			n := min(queue, perStep)

			queue -= n
			served += uint64(n)
			arrivals = append(arrivals, served)
			if len(arrivals) > delaySteps {
				received = arrivals[0]
				arrivals = arrivals[1:]
			}
			ackLine = append(ackLine, received)
			if len(ackLine) > delaySteps {
				if a := ackLine[0]; a > acked {
					acked = a
					p.acked(acked, sent, now)
				}
				ackLine = ackLine[1:]
			}
			if i > total/2 {
				deliveredLate += uint64(n)
			}
		}
		bdp := c.mbps * 1e6 / 8 * c.rtt.Seconds()
		want := bdp + c.mbps*1e6/8*allowance(c.rtt).Seconds()
		util := float64(deliveredLate) / (perStep * float64(total-total/2-1))
		if p.startup {
			t.Errorf("%v Mbit/s, %v: still in startup", c.mbps, c.rtt)
		}
		t.Logf("%v Mbit/s, %v: limit %d, most in flight %d, BDP %.0f, utilisation %.2f", c.mbps, c.rtt, p.limit(), maxInflight, bdp, util)
		if util < 0.95 {
			t.Errorf("%v Mbit/s, %v: the bottleneck was busy %.0f%% of the time", c.mbps, c.rtt, 100*util)
		}
		if float64(maxInflight) > 1.5*want+float64(paceFloor)+16<<10 {
			t.Errorf("%v Mbit/s, %v: %d in flight, want about %.0f", c.mbps, c.rtt, maxInflight, want)
		}
	}
}

// TestPacerStall: waits for an Ack with data in flight longer than half a
// round trip (an outer TCP repairing losses), again and again, lift the
// limit for a few seconds; then it comes back. One alone does not.
func TestPacerStall(t *testing.T) {
	var p pacer
	p.start(0)
	ms := time.Millisecond
	const rate = 10 << 20 // bytes per second: 10 KiB a millisecond
	var sent, acked uint64
	now := time.Duration(0)
	// Steady: 10 KiB sent each millisecond and acknowledged a round
	// trip (40 ms) later; after the first second, with 5 ms of queue.
	lag := 40 * ms
	step := func() {
		now += ms
		sent += rate / 1000
		p.sent(sent, now)
		if now > lag {
			if a := uint64((now-lag)/ms) * (rate / 1000); a > acked {
				acked = a
				p.acked(acked, sent, now)
			}
		}
	}
	for now < 2*time.Second {
		if now > time.Second {
			lag = 45 * ms
		}
		step()
	}
	if p.startup {
		t.Fatal("still in startup")
	}
	before := p.limit()
	// 50 ms without an Ack, then all of it at once.
	stall := func() {
		for range 50 {
			now += ms
			sent += rate / 1000
			p.sent(sent, now)
		}
		lag += 50 * ms // what was held up comes all at once
		for range 100 {
			step()
		}
		lag -= 50 * ms
		for range 100 {
			step()
		}
	}
	stall()
	if l := p.limit(); l == 0 {
		t.Error("one stall lifted the limit")
	}
	for range lossyStalls - 1 {
		stall()
	}
	if l := p.limit(); l != 0 {
		t.Errorf("limit %d after %d stalls, want none", l, lossyStalls)
	}
	for now < 6*time.Second {
		step()
	}
	if l := p.limit(); l > before*11/10 {
		t.Errorf("limit %d seconds after the stall, want about %d again", l, before)
	}
}

// TestPacerOuter: the outer connection's counters, where known, decide
// whether the path is lossy; without them, the stalls do. On a lossy
// path nothing is limited, in startup too.
func TestPacerOuter(t *testing.T) {
	var p pacer
	p.start(0)
	p.startup, p.minRTT, p.bw[0] = false, 40*time.Millisecond, 10e6
	for _, tt := range []struct {
		outer  int32
		stalls int
		limits bool
	}{
		{outerUnknown, 0, true},
		{outerUnknown, lossyStalls, false},
		{outerClean, lossyStalls, true},
		{outerLossy, 0, false},
	} {
		for _, startup := range []bool{false, true} {
			p.outer, p.stalls[0], p.startup = tt.outer, tt.stalls, startup
			if got := p.limit() != 0; got != tt.limits {
				t.Errorf("outer %d, %d stalls, startup %v: limit %d", tt.outer, tt.stalls, startup, p.limit())
			}
		}
	}
}

// TestPacerAfterAppLimited: a side that had little to send for seconds
// (it only acknowledged the other way, its Acks waiting behind the
// other side's upload) begins startup again once its
// limit holds a bulk flow back, and fills the path: what it measured
// while it had little to send does not hold it to that rate. (In the
// lab, without this, the limit of a server that had only acknowledged
// an upload held the download that followed to 5 Mbit/s at 100 ms: CoDel
// dropped what the limit held back, and the inner flows never sent more
// than the limit let through.)
func TestPacerAfterAppLimited(t *testing.T) {
	const mbps, rtt = 140.0, 100 * time.Millisecond
	step := 100 * time.Microsecond
	perStep := mbps * 1e6 / 8 * step.Seconds()
	delaySteps := int(rtt / 2 / step)
	var p pacer
	p.start(0)
	var sent, served, acked, received uint64
	var queue float64
	var arrivals []uint64
	var told uint64
	type due struct {
		at    int
		acked uint64
	}
	var ackLine []due
	// Once the upload is under way, the Acks for what it sent wait
	// behind it, in the peer's queue downstream: the queue of a pacer
	// in startup (a round trip) or not (its allowance).
	queued := int(rtt / step)
	idle, total := int(20*time.Second/step), int(28*time.Second/step)
	var late float64
	heldOnce := false
	for i := range total {
		now := time.Duration(i) * step
		if i < idle {
			if i%10 == 0 { // 1.5 KB a millisecond: ACKs of a download
				sent += 1500
				queue += 1500
				p.sent(sent, now)
			}
			p.appLimited(sent)
		} else {
			lim := p.limit()
			if lim == 0 {
				lim = 8 << 20
			}
			if sent-acked >= lim {
				p.held(now)
				if !heldOnce && !p.startup {
					t.Fatalf("the limit (%d) first holds the bulk flow back outside startup", lim)
				}
				heldOnce = true
			}
			for sent-acked < lim {
				sent += 16 << 10
				queue += 16 << 10
			}
			p.sent(sent, now)
		}
		n := min(queue, perStep)
		queue -= n
		served += uint64(n)
		if i >= total-int(4*time.Second/step) {
			late += n
		}
		arrivals = append(arrivals, served)
		if len(arrivals) > delaySteps {
			received, arrivals = arrivals[0], arrivals[1:]
		}
		at := i + delaySteps
		if i > idle/10 && i < idle {
			at += queued
		}
		if received-told >= 64<<10 { // as the pump: an Ack per ackEvery
			told = received
			ackLine = append(ackLine, due{at, received})
		}
		for len(ackLine) > 0 && ackLine[0].at <= i {
			if a := ackLine[0].acked; a > acked {
				acked = a
				p.acked(acked, sent, now)
			}
			ackLine = ackLine[1:]
		}
	}
	if util := late / (perStep * 4 * float64(time.Second/step)); util < 0.8 {
		t.Errorf("the last 4 s of the bulk flow used %.2f of the path (limit %d, rate %.0f Mbit/s, startup %v)", util, p.limit(), p.rate()*8/1e6, p.startup)
	}
}

// TestPacerStandingQueue: an inner flow whose window (3 MiB) cannot
// reach twice the path's bandwidth-delay product, forwarded by a sender
// whose queue runs dry between the flow's bursts, so that every round
// counts as one in which the sender ran out of packets. Startup still
// ends, by the standing queue it leaves downstream, and the queue at the
// bottleneck shrinks to about the allowance. (In the lab, without this,
// sshvpn kept startup and added 22-25 ms to a ping at 40 ms.)
func TestPacerStandingQueue(t *testing.T) {
	const mbps, rtt, window = 380.0, 40 * time.Millisecond, 3 << 20
	step := 100 * time.Microsecond
	perStep := mbps * 1e6 / 8 * step.Seconds()
	delaySteps := int(rtt / 2 / step)
	var p pacer
	p.start(0)
	var sent, served, acked, received, queued uint64 // queued: in the sender's queue
	var bottleneck float64
	var arrivals, ackLine []uint64
	total := int(6 * time.Second / step)
	var late, lateSteps float64
	for i := range total {
		now := time.Duration(i) * step
		// The inner flow: a burst of 64 KiB whenever its window has room.
		for queued+sent-acked+64<<10 <= window {
			queued += 64 << 10
		}
		lim := p.limit()
		if lim == 0 {
			lim = 1 << 30
		}
		for queued > 0 && sent-acked < lim {
			n := min(queued, 16<<10)
			queued -= n
			sent += n
			bottleneck += float64(n)
		}
		p.sent(sent, now)
		if queued == 0 {
			p.appLimited(sent)
		} else {
			p.held(now)
		}
		n := min(bottleneck, perStep)
		bottleneck -= n
		served += uint64(n)
		if i >= total-int(2*time.Second/step) {
			late += bottleneck
			lateSteps++
		}
		arrivals = append(arrivals, served)
		if len(arrivals) > delaySteps {
			received, arrivals = arrivals[0], arrivals[1:]
		}
		ackLine = append(ackLine, received)
		if len(ackLine) > delaySteps {
			if a := ackLine[0]; a > acked {
				acked = a
				p.acked(acked, sent, now)
			}
			ackLine = ackLine[1:]
		}
	}
	wait := time.Duration(late / lateSteps / (mbps * 1e6 / 8) * float64(time.Second))
	t.Logf("startup %v, limit %d, rate %.0f Mbit/s, queue at the bottleneck %v", p.startup, p.limit(), p.rate()*8/1e6, wait)
	if p.startup {
		t.Error("still in startup")
	}
	if want := 2 * allowance(rtt); wait > want {
		t.Errorf("a standing queue of %v at the bottleneck, want at most %v", wait, want)
	}
}

// TestPacerQueueExitRate: startup that ends by a standing queue leaves
// with the rate that what is in flight shows (in flight over the round
// trip), not the max filter's, which lags a rate still growing.
func TestPacerQueueExitRate(t *testing.T) {
	var p pacer
	p.start(0)
	ms := time.Millisecond
	// 380 Mbit/s (47.5 kB a millisecond) with a round trip of 50 ms,
	// 10 ms of it queue; the max filter lags at 219 Mbit/s.
	p.minRTT, p.bw[0] = 40*ms, 219e6/8
	p.fullBw = p.bw[0] // the rate's growth does not end startup here
	var history []uint64
	var sent uint64
	for i := range 300 {
		now := time.Duration(i) * ms
		sent += 47_500
		p.sent(sent, now)
		history = append(history, sent)
		if i >= 50 {
			p.acked(history[i-50], sent, now)
		}
		if !p.startup {
			break
		}
	}
	if p.startup {
		t.Fatal("still in startup, with 10 ms of queue for 250 ms")
	}
	if got := p.rate() * 8 / 1e6; got < 340 || got > 460 {
		t.Errorf("left startup with %.0f Mbit/s, want about 380", got)
	}
}
