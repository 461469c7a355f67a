package tunnel

import (
	"context"
	"errors"
	"sync"
	"time"
)

// run pumps until ctx ends, the peer closes, either end fails or the
// link's device does. The first of these closes the transport (never the
// device: the link outlives the connection); run then detaches from the
// link and waits for its goroutines. It returns nil for an orderly close by
// either side.
func (p *pump) run(ctx context.Context) error {
	pongs := make(chan pingMsg, 4)
	if p.paced {
		p.pace.start(time.Since(p.start))
	}

	errc := make(chan error, 1) // control
	rerr := make(chan error, 1) // readTransport
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); errc <- p.control(ctx, pongs) }()
	go func() { defer wg.Done(); rerr <- p.readTransport(pongs) }()
	go func() { defer wg.Done(); p.send() }()
	wake(p.wake) // what the device read before the run began

	err := p.wait(ctx, errc, rerr)
	p.conn.Close() // first: it ends a flush the device reader may wait in
	p.stop()
	wg.Wait()
	p.log.Debug("connection closed",
		"packets_out", p.stats.PacketsOut.Load(), "bytes_out", p.stats.BytesOut.Load(),
		"packets_in", p.stats.PacketsIn.Load(), "bytes_in", p.stats.BytesIn.Load(),
		"dropped", p.stats.Dropped.Load(), "dropped_out", p.stats.DroppedOut.Load(),
		"queue_dropped", p.stats.QueueDropped.Load(), "queue_marked", p.stats.QueueMarked.Load(), "queue_overflow", p.stats.QueueOverflow.Load(),
		"paced", p.paced, "pace_limit", p.pace.limit(), "min_rtt", p.pace.minRTT, "rate_mbps", int(p.pace.rate()*8/1e6), "startup", p.pace.startup, "lossy", p.pace.lossy())
	if n := p.stats.Dropped.Load() + p.stats.DroppedOut.Load() + p.stats.DroppedRate.Load() + p.stats.Malformed.Load(); n > 0 {
		p.log.Info("dropped packets", "from_peer", p.stats.Dropped.Load(), "to_peer", p.stats.DroppedOut.Load(),
			"over_rate", p.stats.DroppedRate.Load(), "malformed", p.stats.Malformed.Load(), AdminOnly)
	}
	if err == errPeerClosed || err == errLocalClose {
		return nil
	}
	return err
}

// wait returns why the pump ends: what the first of its goroutines to finish
// (or the device reader's flush to fail) returns, except that
//   - once ctx has ended, the end is orderly whatever else fails meanwhile
//     (the peer hanging up is its answer to the Close frame), and comes
//     after closeGrace at the latest even if the transport cannot take the
//     Close frame;
//   - a peer silent for longer than deadAfter ends it even while a write to
//     the peer blocks (a peer that stopped reading), which would keep
//     the writers from noticing;
//   - when a write fails, what the read side finds within closeGrace (the
//     peer's Close or Error frame, or the end of the stream) explains it
//     better than a broken pipe.
func (p *pump) wait(ctx context.Context, errc, rerr <-chan error) error {
	last := time.Now()
	tick := time.NewTicker(p.keepalive)
	defer tick.Stop()
	cancelled := ctx.Done()
	var grace <-chan time.Time
	for {
		var err error
		select {
		case err = <-errc:
		case err = <-p.werr:
		case err := <-rerr:
			if ctx.Err() != nil {
				return errLocalClose
			}
			return err
		case now := <-tick.C:
			if p.heard.Swap(false) {
				last = p.start.Add(time.Duration(p.heardAt.Load()))
			} else if silent := now.Sub(last); silent > p.deadAfter {
				return &DeadPeerError{Silent: silent}
			}
			continue
		case <-cancelled:
			cancelled = nil
			grace = time.After(closeGrace)
			continue
		case <-grace:
			return errLocalClose
		case <-p.linkDead:
			return p.linkErr()
		case <-p.linkClosing:
			return errLocalClose
		}
		// A writer ended.
		if ctx.Err() != nil {
			return errLocalClose
		}
		if errors.Is(err, errWrite) {
			select {
			case err = <-rerr:
			case <-time.After(closeGrace):
			}
		}
		return err
	}
}
