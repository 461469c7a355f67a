package sshvpn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

// Defaults for keepalives.
const (
	DefaultKeepalive = 10 * time.Second
	DefaultDeadAfter = 45 * time.Second
)

// queueLen is how many packets read from the device may wait for the
// transport; their buffers are allocated once per link.
const queueLen = 32

// errPeerClosed ends a pump whose peer said goodbye.
var errPeerClosed = errors.New("sshvpn: peer closed the tunnel")

// errLocalClose ends a pump that was asked to stop.
var errLocalClose = errors.New("sshvpn: closed")

// errWrite marks errors writing to the transport.
var errWrite = errors.New("sshvpn: writing to the transport")

// closeGrace bounds how long a pump that was asked to stop waits for its
// Close frame to be written, and how long one whose transport failed to take
// a write waits for the read side to say why.
const closeGrace = 2 * time.Second

// DeadPeerError says the peer stopped answering keepalives.
type DeadPeerError struct{ Silent time.Duration }

func (e *DeadPeerError) Error() string {
	return fmt.Sprintf("sshvpn: no sign of life from the peer for %v; assuming the connection is dead", e.Silent.Round(time.Second))
}

// Stats counts a pump's traffic.
type Stats struct {
	PacketsOut, BytesOut atomic.Uint64 // device -> transport
	PacketsIn, BytesIn   atomic.Uint64 // transport -> device
	Dropped              atomic.Uint64 // packets from the peer refused by the filter or the device
	DroppedOut           atomic.Uint64 // packets to the peer refused by the filter
	DroppedRate          atomic.Uint64 // packets either way over the session's rate limit
	DroppedDetached      atomic.Uint64 // packets read from the device while no connection was attached
}

// AdminOnly marks a log record for the server's admin alone: the remote
// side sends it to the system log, never to its stderr, which sshd passes
// to the client. Spoofing reports, drop counts and other sessions' business
// carry it.
var AdminOnly = slog.Bool(AdminOnlyKey, true)

// AdminOnlyKey is the key of AdminOnly.
const AdminOnlyKey = "admin_only"

// pump moves packets between a link and one connection's framed transport.
// The link's device reader hands it packets on out (in buffers it returns to
// the link's free list); it writes what the peer sends to the device.
type pump struct {
	link      *Link
	dev       tun.Device
	conn      io.Closer
	r         *framing.Reader
	w         *framing.Writer
	keepalive time.Duration
	deadAfter time.Duration
	log       *slog.Logger
	// accept, if set, decides whether a packet from the peer may enter the
	// device; acceptOut whether one from the device may go to the peer.
	accept    func(pkt []byte) bool
	acceptOut func(pkt []byte) bool
	// limitIn and limitOut, if set, say whether a packet of n bytes from
	// (to) the peer is within the session's rate limit.
	limitIn, limitOut func(n int) bool
	stats             *Stats

	// heard says a frame arrived since the last keepalive tick, heardAt
	// when the first of them did (time since start): the clock is read
	// once per tick period, not per frame.
	heard   atomic.Bool
	heardAt atomic.Int64
	start   time.Time

	out      chan []byte   // packets from the link's device reader
	done     chan struct{} // closed when the pump stops taking packets
	stopOnce sync.Once
	wbuf     [][]byte // one packet, for the device's batch Write
}

type pingMsg struct {
	n int
	b [framing.MaxPingPayload]byte
}

// run pumps until ctx ends, the peer closes, either end fails or the
// link's device does. The first of these closes the transport (never the
// device: the link outlives the connection); run then detaches from the
// link and waits for its goroutines. It returns nil for an orderly close by
// either side.
func (p *pump) run(ctx context.Context) error {
	p.start = time.Now()
	pongs := make(chan pingMsg, 4)

	errc := make(chan error, 1) // writeTransport
	rerr := make(chan error, 1) // readTransport
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errc <- p.writeTransport(ctx, pongs) }()
	go func() { defer wg.Done(); rerr <- p.readTransport(pongs) }()

	err := p.wait(ctx, errc, rerr)
	p.stop()
	p.conn.Close()
	wg.Wait()
	p.giveBack()
	p.log.Debug("connection closed",
		"packets_out", p.stats.PacketsOut.Load(), "bytes_out", p.stats.BytesOut.Load(),
		"packets_in", p.stats.PacketsIn.Load(), "bytes_in", p.stats.BytesIn.Load(),
		"dropped", p.stats.Dropped.Load(), "dropped_out", p.stats.DroppedOut.Load())
	if n := p.stats.Dropped.Load() + p.stats.DroppedOut.Load() + p.stats.DroppedRate.Load(); n > 0 {
		p.log.Info("dropped packets", "from_peer", p.stats.Dropped.Load(), "to_peer", p.stats.DroppedOut.Load(),
			"over_rate", p.stats.DroppedRate.Load(), AdminOnly)
	}
	if err == errPeerClosed || err == errLocalClose {
		return nil
	}
	return err
}

// stop detaches the pump from its link: no packet reaches it afterwards.
func (p *pump) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		p.link.detach(p)
	})
}

// giveBack returns the packets still queued for the pump to the link. Call
// it after stop, once nothing else reads p.out.
func (p *pump) giveBack() {
	for {
		select {
		case b := <-p.out:
			p.link.free <- b[:cap(b)]
			p.link.stats.DroppedDetached.Add(1)
		default:
			return
		}
	}
}

// wait returns why the pump ends: what the first of its goroutines to finish
// returns, except that
//   - once ctx has ended, the end is orderly whatever else fails meanwhile
//     (the peer hanging up is its answer to the Close frame), and comes
//     after closeGrace at the latest even if the transport cannot take the
//     Close frame;
//   - a peer silent for longer than deadAfter ends it even while a write to
//     the peer blocks (a peer that stopped reading), which would keep
//     writeTransport from noticing;
//   - when a write fails, what the read side finds within closeGrace (the
//     peer's Close or Error frame, or the end of the stream) explains it
//     better than a broken pipe.
func (p *pump) wait(ctx context.Context, errc, rerr <-chan error) error {
	last := p.start
	tick := time.NewTicker(p.keepalive)
	defer tick.Stop()
	cancelled := ctx.Done()
	var grace <-chan time.Time
	for {
		select {
		case err := <-errc:
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
		case <-cancelled:
			cancelled = nil
			grace = time.After(closeGrace)
		case <-grace:
			return errLocalClose
		case <-p.link.dead:
			return p.link.Err()
		case <-p.link.closing:
			return errLocalClose
		}
	}
}

// writeTransport owns the transport's write side: it frames queued packets,
// writing everything queued with one flush, and sends keepalives, pongs and
// the closing frame. Whether the peer is still alive is checked by wait.
func (p *pump) writeTransport(ctx context.Context, pongs <-chan pingMsg) error {
	tick := time.NewTicker(p.keepalive)
	defer tick.Stop()
	var ping [8]byte
	for {
		select {
		case pkt := <-p.out:
			if err := p.frame(pkt); err != nil {
				return err
			}
			// Take everything else already queued, then flush once.
		drain:
			for range 4 * queueLen {
				select {
				case pkt := <-p.out:
					if err := p.frame(pkt); err != nil {
						return err
					}
				default:
					break drain
				}
			}
		case m := <-pongs:
			if err := p.w.WriteFrame(framing.TypePong, m.b[:m.n]); err != nil {
				return p.writeErr(err)
			}
		case <-tick.C:
			ping[0]++
			if err := p.w.WriteFrame(framing.TypePing, ping[:]); err != nil {
				return p.writeErr(err)
			}
		case <-ctx.Done():
			// A plain cancel is an orderly close; a cancel with a cause
			// (this session was replaced) tells the peer why, as an error.
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				p.w.WriteFrame(framing.TypeError, []byte(c.Error()))
			} else {
				p.w.WriteFrame(framing.TypeClose, []byte("closed by user"))
			}
			p.w.Flush()
			return errLocalClose
		case <-p.done:
			return nil
		}
		if err := p.w.Flush(); err != nil {
			return p.writeErr(err)
		}
	}
}

func (p *pump) frame(pkt []byte) error {
	err := p.w.WriteFrame(framing.TypeData, pkt)
	p.stats.PacketsOut.Add(1)
	p.stats.BytesOut.Add(uint64(len(pkt)))
	p.link.free <- pkt[:cap(pkt)]
	if err != nil {
		return p.writeErr(err)
	}
	return nil
}

func (p *pump) writeErr(err error) error {
	return fmt.Errorf("%w: %w", errWrite, err)
}

// readTransport reads frames and writes Data packets to the device.
func (p *pump) readTransport(pongs chan<- pingMsg) error {
	for {
		t, payload, err := p.r.ReadFrame()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("sshvpn: the connection to the peer ended without a goodbye: %w", err)
			}
			return fmt.Errorf("sshvpn: connection to the peer lost: %w", err)
		}
		if !p.heard.Load() {
			p.heardAt.Store(int64(time.Since(p.start)))
			p.heard.Store(true)
		}
		switch t {
		case framing.TypeData:
			if p.accept != nil && !p.accept(payload) {
				if p.stats.Dropped.Add(1) == 1 {
					if src, ok := packetAddr(payload, false); ok {
						p.log.Warn("dropping packets from the peer with a source address it may not use (see --allow-source)", "src", src, AdminOnly)
					} else {
						p.log.Warn("dropping frames from the peer that are not IP packets", "len", len(payload), AdminOnly)
					}
				}
				continue
			}
			if p.limitIn != nil && !p.limitIn(len(payload)) {
				if p.stats.DroppedRate.Add(1) == 1 {
					p.log.Warn("dropping packets over the session's rate limit (--rate)", AdminOnly)
				}
				continue
			}
			p.wbuf[0] = payload
			if _, err := p.dev.Write(p.wbuf, 0); err != nil {
				if isClosed(err) {
					return fmt.Errorf("sshvpn: writing to %s: %w", p.dev.Name(), err)
				}
				// A packet the kernel refuses (malformed, wrong
				// family) costs that packet, not the tunnel.
				p.stats.Dropped.Add(1)
				p.log.Debug("device refused a packet", "len", len(payload), "err", err)
				continue
			}
			p.stats.PacketsIn.Add(1)
			p.stats.BytesIn.Add(uint64(len(payload)))
		case framing.TypePing:
			var m pingMsg
			m.n = copy(m.b[:], payload)
			select {
			case pongs <- m:
			default: // a flood of pings gets fewer pongs
			}
		case framing.TypePong:
		case framing.TypeClose:
			p.log.Info("peer closed the tunnel", "reason", printable(payload))
			return errPeerClosed
		case framing.TypeError:
			return &RemoteError{Msg: printable(payload)}
		case framing.TypeHello:
			return errors.New("sshvpn: protocol error: second hello from the peer")
		default:
			p.log.Debug("ignoring unknown frame", "type", t, "len", len(payload))
		}
	}
}
