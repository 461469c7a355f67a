package tunnel

import "time"

// The pacer's parameters.
const (
	// paceFloor is the least the pacer lets be in flight: enough for a
	// burst of super-packets, whatever the estimates say, and the peer's
	// Ack spacing (ackEvery), which the limit adds on top of the path;
	// paceInitial is the limit before the first estimates, as TCP's
	// initial window.
	paceFloor   = ackEvery
	paceInitial = 256 << 10
	// startupGain is the limit's gain over the bandwidth-delay product
	// while the delivery rate still grows by startupGrowth a round trip.
	startupGain   = 2.0
	startupGrowth = 1.25
	startupRounds = 30
	// queueRounds is how many round trips in a row a standing queue
	// downstream ends startup after (see queued).
	queueRounds = 2
	// paceMarks bounds the send marks kept for round-trip samples, and
	// markEvery spaces them.
	paceMarks = 256
	markEvery = 250 * time.Microsecond
	// bwBucket is one bucket of the delivery rate's max filter; the
	// filter keeps the best of this one and the last two.
	bwBucket = time.Second
	// bwSampleMin is the shortest interval a delivery rate is measured
	// over: shorter ones are bursts, not rates.
	bwSampleMin = 2 * time.Millisecond
	// stallMin is the shortest wait for an Ack that counts as a stall;
	// lossyStalls in three seconds make a path lossy (four missed the
	// stalls of a download at 40 ms and 1% loss; one alone is ssh's
	// channel window).
	stallMin    = 5 * time.Millisecond
	lossyStalls = 2
)

// pacer keeps what is in flight to the peer (sent, and not yet
// acknowledged as received) just above what the path holds, so that the
// queue forms in sshvpn's own queue, where CoDel manages it, rather than
// in the pipe to ssh, ssh's channel buffers and the outer socket, where
// nothing does. It works as the kernel's byte queue limits and BBR do:
// from the peer's Acks (the bytes it has received) it learns the delivery
// rate (the best over the last seconds) and the minimum round trip, and
// lets rate × (round trip + a small allowance) be in flight; on a path
// that stalls (see lossy) it steps aside. While the
// rate still grows (startup), twice the bandwidth-delay product may be in
// flight. A pacer that was never started (an older peer, which sends no
// Acks) limits nothing.
//
// The minimum round trip is kept for the connection's life: a standing
// queue of the allowance would otherwise creep into it. A route that
// became longer costs throughput until the next connection.
//
// It is used by one goroutine, the pump's sender.
type pacer struct {
	active bool // the peer acknowledges

	startup    bool
	roundStart time.Duration
	fullBw     float64
	fullRounds int
	rounds     int
	settled    time.Duration // stalls count from then on
	sampled    bool          // a rate was measured since the last round ended
	// A round trip's least round-trip sample, for startup's other way
	// out (see queued): when it began, the least, and how many rounds
	// in a row found a queue.
	qRoundStart time.Duration
	qRoundMin   time.Duration
	qRounds     int
	lastRTT     time.Duration // the last round-trip sample

	marks     []paceMark // sends not yet acknowledged, oldest first
	minRTT    time.Duration
	lastAck   uint64 // the last Ack
	lastAcked uint64 // the last Ack a rate was sampled at
	lastAckAt time.Duration
	lastSent  time.Duration    // when what lastAcked covers was sent
	bw        [3]float64       // bytes per second: this bucket's best, and the two before
	stall     [3]time.Duration // the longest wait for an Ack with data in flight, likewise
	stalls    [3]int           // and how many there were
	bucketAt  time.Duration
	ackAt     time.Duration // when the last Ack came
	busy      bool          // and data was in flight after it
	outer     int32         // the outer TCP connection's state, if known (outerUnknown...)

	// appLimitedTo: the bytes sent up to the last time the sender ran
	// out of packets below the limit. An Ack up to there measured what
	// the sender had to send, not what the path carries.
	appLimitedTo uint64
	lastFull     time.Duration // the last rate sample that was not app-limited
}

// paceMark says that sent bytes had been sent at at.
type paceMark struct {
	sent uint64
	at   time.Duration
}

// start makes the pacer limit what is in flight: the peer acknowledges.
func (p *pacer) start(now time.Duration) {
	*p = pacer{active: true, startup: true, roundStart: now, lastAckAt: now, lastSent: now, bucketAt: now, ackAt: now}
}

// sent notes that sent bytes in all have been written by now.
func (p *pacer) sent(sent uint64, now time.Duration) {
	if !p.active {
		return
	}
	if n := len(p.marks); n > 0 && (p.marks[n-1].sent == sent || now-p.marks[n-1].at < markEvery) {
		return
	}
	if len(p.marks) == paceMarks {
		// Thin out rather than forget the oldest: the Ack for them is
		// what comes next.
		for i := range paceMarks / 2 {
			p.marks[i] = p.marks[2*i+1]
		}
		p.marks = p.marks[:paceMarks/2]
	}
	p.marks = append(p.marks, paceMark{sent, now})
}

// acked takes an Ack: the peer has received acked bytes in all by now.
func (p *pacer) acked(acked, sent uint64, now time.Duration) {
	if !p.active {
		return
	}
	p.rotate(now)
	if acked > p.lastAck {
		// A stall: data was in flight and no Ack came for this long
		// (the outer TCP repairing a loss, in either direction).
		// Gaps shorter than half a round trip are the spacing of Acks
		// for large packets on a slow path, not stalls.
		if gap := now - p.ackAt; p.busy && !p.startup && now > p.settled && gap > max(p.minRTT/2, stallMin) {
			p.stall[0] = max(p.stall[0], gap)
			p.stalls[0]++
		}
		p.lastAck, p.ackAt = acked, now
	}
	// Data in flight is a stall's sign only when there is more than the
	// path holds: with less, gaps are what the pacer itself leaves. (In
	// startup, with twice that in flight, ssh's own channel window may
	// leave them too.)
	p.busy = float64(sent-acked) > max(paceFloor, p.rate()*p.minRTT.Seconds())
	if acked <= p.lastAcked {
		return
	}
	// A round trip: from the newest send the Ack covers.
	i := 0
	for i < len(p.marks) && p.marks[i].sent <= acked {
		i++
	}
	if i == 0 {
		return // nothing sent since the last mark is acknowledged whole
	}
	sentAt := p.marks[i-1].at
	rtt := now - sentAt
	if p.minRTT == 0 || rtt < p.minRTT {
		p.minRTT = max(rtt, time.Microsecond)
	}
	if p.qRoundMin == 0 || rtt < p.qRoundMin {
		p.qRoundMin = rtt
	}
	p.lastRTT = rtt
	p.marks = append(p.marks[:0], p.marks[i:]...)
	// The delivery rate since the last sample, over the longer of the
	// interval between the Acks and that between the sends they cover
	// (as BBR does): data held up on the way (a retransmission in the
	// outer TCP) and then delivered in a rush was not sent that fast, and
	// the path cannot carry it that fast.
	if d := max(now-p.lastAckAt, sentAt-p.lastSent); d >= max(bwSampleMin, 2*p.minRTT) {
		rate := float64(acked-p.lastAcked) / d.Seconds()
		p.bw[0] = max(p.bw[0], rate)
		p.lastAcked, p.lastAckAt, p.lastSent = acked, now, sentAt
		p.sampled = true
		if acked > p.appLimitedTo {
			p.lastFull = now
		}
	}
	p.queued(now, sent-acked)
	// Startup ends once three round trips in a row did not raise the
	// rate by a quarter, or after startupRounds; rounds in which the
	// sender had less to send than the limit let go do not count (as
	// BBR's): a side that only acknowledged a download for a minute has
	// learnt nothing of the path when its own upload begins. A round
	// lasts until a rate was measured in it (over two round trips at
	// least): one without says nothing of the rate's growth. (queued is
	// startup's other way out.)
	if p.startup && p.minRTT > 0 && now-p.roundStart >= p.minRTT && acked <= p.appLimitedTo {
		p.roundStart, p.sampled = now, false
	}
	if p.startup && p.minRTT > 0 && now-p.roundStart >= p.minRTT && p.sampled {
		p.roundStart, p.sampled = now, false
		p.rounds++
		if bw := p.rate(); bw >= p.fullBw*startupGrowth {
			p.fullBw, p.fullRounds = bw, 0
		} else if p.fullRounds++; p.fullRounds >= 3 {
			p.startup = false
		}
		if p.rounds >= startupRounds {
			p.startup = false // a noisy path's rate may seem to grow for ever
		}
		if !p.startup {
			// What startup put in flight drains for a few round
			// trips; gaps meanwhile are its doing.
			p.settled = now + 4*p.minRTT
		}
	}
}

// queued ends startup once every round-trip sample of queueRounds round
// trips in a row took longer than the least by more than the allowance:
// a standing queue downstream (in the pipe to ssh, ssh's buffers or the
// outer socket) longer than the pacer leaves there after startup.
// Startup's limit, twice the bandwidth-delay product, exceeds what the
// path holds only once the rate is at least half the path's; from then
// on, more in flight is only queue.
//
// Rounds in which the sender ran out of packets count toward this way
// out, as they cannot toward the rate's growth: sshvpn's queue runs dry
// between every burst of the inner flow it forwards, and an inner flow
// whose window cannot reach twice the product (a 4 MiB send buffer at
// 380 Mbit/s and 40 ms) kept startup, and its standing queue of a round
// trip, for ever (+22-25 ms to a ping at 40 ms). Counting such rounds
// toward the rate's growth instead ended startup at a rate the inner
// flows were still growing from: 100 ms paths lost a fifth of their
// throughput, and a download after an upload was held to 5 Mbit/s.
func (p *pacer) queued(now time.Duration, inflight uint64) {
	if !p.startup || p.minRTT == 0 {
		p.qRoundStart, p.qRoundMin, p.qRounds = now, 0, 0
		return
	}
	if now-p.qRoundStart < p.minRTT {
		return
	}
	least := p.qRoundMin
	if least > p.minRTT+allowance(p.minRTT) {
		p.qRounds++
	} else {
		p.qRounds = 0
	}
	p.qRoundStart, p.qRoundMin = now, 0
	if p.qRounds >= queueRounds {
		p.startup, p.qRounds = false, 0
		p.settled = now + 4*p.minRTT
		// The rate's max filter lags a rate that grew in the last
		// round trips (it measures over two at least); what is in
		// flight over the round trip it takes now is the rate now
		// (Little's law). (Leaving with the lagging one, 219 Mbit/s of
		// 380 at 40 ms, clamped the inner flow at once; CoDel dropped
		// what the clamp held back, and the flow took 6 s to recover.
		// Over the round's least sample instead of the last, the rate
		// came out a third too high in some runs.)
		p.bw[0] = max(p.bw[0], float64(inflight)/max(least, p.lastRTT).Seconds())
	}
}

// appLimited notes that the sender ran out of packets, having sent sent
// bytes, with less in flight than the limit.
func (p *pacer) appLimited(sent uint64) { p.appLimitedTo = sent }

// held notes that the limit held packets back at now. When the rate the
// limit comes from was measured only while the sender had little to send
// (none of the last samples was otherwise), it says nothing of the path:
// startup begins again, as it does for a new connection.
func (p *pacer) held(now time.Duration) {
	if p.active && !p.startup && now-p.lastFull > 3*bwBucket {
		p.startup, p.roundStart, p.fullBw, p.fullRounds, p.rounds = true, now, 0, 0, 0
		p.lastFull = now
	}
}

// rotate starts the filters' next bucket once a bucket's time is up.
func (p *pacer) rotate(now time.Duration) {
	for now-p.bucketAt >= bwBucket {
		p.bw[2], p.bw[1], p.bw[0] = p.bw[1], p.bw[0], 0
		p.stall[2], p.stall[1], p.stall[0] = p.stall[1], p.stall[0], 0
		p.stalls[2], p.stalls[1], p.stalls[0] = p.stalls[1], p.stalls[0], 0
		p.bucketAt += bwBucket
		if now-p.bucketAt > 3*bwBucket {
			p.bucketAt = now
		}
	}
}

// lossy reports whether the path stalled again and again in the last
// seconds: the outer TCP stopped delivering for a while (repairing a
// loss, in either direction). Then the pacer limits nothing. (A stall now
// and then is ssh's channel window, which refills a round trip after
// half of it was used: the pacer keeps limiting through those.) Measured at 40 ms and 1%
// loss, any limit that kept the added latency below the stalls' (rate ×
// (round trip + stall), twice that) held an inner TCP flow to 0.2-0.8 of
// its unpaced rate, at random: its packets waited through the stalls in
// sshvpn's queue instead of the outer TCP's, its retransmission timer
// fired, and the delivery rate the pacer learnt fell with it. On such a
// path the stalls set the latency, not the queue; one connection cannot
// do better (--streams can).
//
// Where the kernel's counters of the outer connection can be read (see
// lossMeter), they decide: it is lossy while it retransmits. Stalls are
// the guess without them: at 40 ms and 1% loss, some runs saw too few
// stalls, and the pacer held a flow to a third of what it got unpaced.
func (p *pacer) lossy() bool {
	switch p.outer {
	case outerClean:
		return false
	case outerLossy:
		return true
	}
	return p.stalls[0]+p.stalls[1]+p.stalls[2] >= lossyStalls
}

// rate is the delivery rate's max filter, in bytes per second.
func (p *pacer) rate() float64 { return max(p.bw[0], p.bw[1], p.bw[2]) }

// limit is the most that may be in flight; 0 means no limit.
func (p *pacer) limit() uint64 {
	if !p.active {
		return 0
	}
	bw := p.rate()
	if bw == 0 || p.minRTT == 0 {
		return paceInitial
	}
	// A lossy path first: startup, which a stale rate restarts (held),
	// would limit it to twice a rate its stalls keep low. (At 40 ms and
	// 1% loss, checking startup first held downloads to 73-101 Mbit/s
	// against 139-164 unpaced.)
	if p.lossy() {
		return 0
	}
	if p.startup {
		return max(paceInitial, uint64(startupGain*bw*p.minRTT.Seconds()))
	}
	// Plus the Ack spacing: up to that much of what is in flight has
	// arrived and waits for the peer's next Ack. Without it, at a low
	// rate the spacing ate the allowance, the rate could not rise, and
	// a download that followed an upload stayed at the rate of the
	// acknowledgements the side had sent during the upload: 5 Mbit/s
	// at 100 ms.
	return paceFloor + uint64(bw*(p.minRTT+allowance(p.minRTT)).Seconds())
}

// allowance is the queue the pacer leaves downstream beyond the path's
// round trip: headroom for the rate to grow into (the estimate can only
// rise when more than the last estimate was in flight) and for the
// wakeups of the processes in between. It is what a packet that skips
// sshvpn's queue (a ping, a keystroke) still waits.
func allowance(rtt time.Duration) time.Duration {
	return 2*time.Millisecond + rtt/8
}
