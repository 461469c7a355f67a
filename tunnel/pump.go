package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/tun"
)

// Defaults for keepalives.
const (
	DefaultKeepalive = 10 * time.Second
	DefaultDeadAfter = 45 * time.Second
)

// errPeerClosed ends a pump whose peer said goodbye.
var errPeerClosed = errors.New("tunnel: peer closed the tunnel")

// errLocalClose ends a pump that was asked to stop.
var errLocalClose = errors.New("tunnel: closed")

// ErrDropped is what a device that filters for a session answers a Write
// of a packet the session may not carry; it was counted.
var ErrDropped = errors.New("tunnel: dropped: the session may not carry it")

// errWrite marks errors writing to the transport.
var errWrite = errors.New("tunnel: writing to the transport")

// closeGrace bounds how long a pump that was asked to stop waits for its
// Close frame to be written, and how long one whose transport failed to take
// a write waits for the read side to say why.
const closeGrace = 2 * time.Second

// AdminOnly marks a log record for the server's admin alone: the remote
// side sends it to the system log, never to its stderr, which sshd passes
// to the client. Spoofing reports, drop counts and other sessions' business
// carry it.
var AdminOnly = slog.Bool(AdminOnlyKey, true)

// AdminOnlyKey is the key of AdminOnly.
const AdminOnlyKey = "admin_only"

// pump moves packets between a link and one connection's framed transport.
// The link's device reader frames packets for it straight into dw and
// flushes it; readTransport writes what the peer sends to the device;
// control sends keepalives, pongs and the closing frame. Both writers write
// whole frames through tw, which serialises them.
type pump struct {
	dev  tun.Device
	vnet bool // the device's packets carry a virtio-net header
	// What the pump needs of its link, which outlives it: to be
	// detached from it, and to hear when its device fails or it closes.
	detach      func()
	linkDead    <-chan struct{}
	linkErr     func() error
	linkClosing <-chan struct{}
	conn        io.Closer
	r           *framing.Reader
	tw          *lockedWriter   // the transport's write side
	dw          *framing.Writer // data frames: the link's device reader alone uses it
	cw          *framing.Writer // control frames: control alone uses it
	offload     tun.Offload     // the offloads agreed with the peer
	werr        chan error      // a failed flush of dw
	keepalive   time.Duration
	deadAfter   time.Duration
	log         *slog.Logger
	stats       *Stats

	// heard says a frame arrived since the last keepalive tick, heardAt
	// when the first of them did (time since start): the clock is read
	// once per tick period, not per frame.
	heard   atomic.Bool
	heardAt atomic.Int64
	start   time.Time

	done     chan struct{} // closed when the pump stops taking packets
	stopOnce sync.Once
	wbuf     [][]byte // one packet, for the device's batch Write
	vnetBuf  []byte   // a Data frame's packet behind a blank virtio-net header

	// The way out (see send.go): the device reader queues packets in q,
	// the sender writes them.
	tap   bool   // frames are Ethernet frames
	cur   []byte // the device reader's buffer
	bufs  bufs
	qmu   sync.Mutex
	q     *fqCodel
	qseen QueueStats    // q's counters as last added to stats
	wake  chan struct{} // the sender has work: packets, or an Ack
	// Pacing: when the peer acknowledges (its Hello said so), the
	// sender keeps what is in flight within the pacer's limit, and the
	// pump acknowledges what it receives.
	paced     bool
	pace      pacer         // the sender's
	sentBytes uint64        // payload bytes written; the sender's
	acked     atomic.Uint64 // payload bytes the peer has received
	received  atomic.Uint64 // payload bytes received from the peer
	ackTold   uint64        // received when the last Ack was asked for; readTransport's
	ackNow    chan struct{} // control sends an Ack
	loss      *lossMeter    // the outer TCP connection's; nil: none
	outer     atomic.Int32  // what loss last said (outerUnknown...); control's
	stripe    *Stripe       // the link's, if striped: it drops second copies
}

// lockedWriter serialises writes to the transport: each is whole frames.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// dataWriterSize is the pump's frame buffer: several super-packets, so a
// burst leaves in one write.
const dataWriterSize = 512 << 10

// ackEvery is how much payload a pump receives between its Acks,
// whatever the bursts.
const ackEvery = 64 << 10

type pingMsg struct {
	n int
	b [framing.MaxPingPayload]byte
}

// stop detaches the pump from its link: no packet reaches it afterwards.
func (p *pump) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		p.detach()
	})
}

// taking reports whether the pump still takes packets.
func (p *pump) taking() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *pump) offloads() tun.Offload { return p.offload }

func (p *pump) sent(pkt []byte) {
	p.stats.PacketsOut.Add(1)
	p.stats.BytesOut.Add(uint64(len(pkt)))
}

func (p *pump) droppedOut() { p.stats.DroppedOut.Add(1) }

// fail reports a failed write of data frames to wait, once.
func (p *pump) fail(err error) {
	select {
	case p.werr <- p.writeErr(err):
	default:
	}
}

// control sends keepalives, pongs and the closing frame. Whether the peer
// is still alive is checked by wait.
func (p *pump) control(ctx context.Context, pongs <-chan pingMsg) error {
	tick := time.NewTicker(p.keepalive)
	defer tick.Stop()
	var lossC <-chan time.Time
	if p.paced && p.loss != nil {
		t := time.NewTicker(lossPoll)
		defer t.Stop()
		lossC = t.C
	}
	var ping [8]byte
	for {
		var err error
		select {
		case <-lossC:
			st, err := p.loss.poll()
			if err != nil {
				p.log.Debug("the pacer goes by stalls: the outer TCP connection's counters are unknown", "err", err)
				lossC = nil
			}
			switch old := p.outer.Swap(st); {
			case st == outerLossy && old != outerLossy:
				p.log.Debug("the outer TCP connection retransmits: the pacer steps aside")
			case old == outerLossy && st == outerClean:
				p.log.Debug("the outer TCP connection no longer retransmits: the pacer limits again")
			}
			continue
		case m := <-pongs:
			err = p.cw.WriteFrame(framing.TypePong, m.b[:m.n])
		case <-p.ackNow:
			var ack [framing.AckLen]byte
			binary.BigEndian.PutUint64(ack[:], p.received.Load())
			err = p.cw.WriteFrame(framing.TypeAck, ack[:])
		case <-tick.C:
			// The peer echoes the payload: when it was sent, for the RTT.
			binary.BigEndian.PutUint64(ping[:], uint64(time.Since(p.start)))
			err = p.cw.WriteFrame(framing.TypePing, ping[:])
		case <-ctx.Done():
			// A plain cancel is an orderly close; a cancel with a cause
			// (this session was replaced) tells the peer why, as an error.
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				p.cw.WriteFrame(framing.TypeError, []byte(c.Error()))
			} else {
				p.cw.WriteFrame(framing.TypeClose, []byte("closed by user"))
			}
			p.cw.Flush()
			return errLocalClose
		case <-p.done:
			return nil
		}
		if err == nil {
			err = p.cw.Flush()
		}
		if err != nil {
			return p.writeErr(err)
		}
	}
}

func (p *pump) writeErr(err error) error {
	return fmt.Errorf("%w: %w", errWrite, err)
}

// readTransport reads frames and writes the packets in Data and Offload
// frames to the device.
func (p *pump) readTransport(pongs chan<- pingMsg) error {
	for {
		t, payload, err := p.r.ReadFrame()
		if err != nil {
			if err == io.EOF {
				return fmt.Errorf("tunnel: the connection to the peer ended without a goodbye: %w", err)
			}
			return fmt.Errorf("tunnel: connection to the peer lost: %w", err)
		}
		if !p.heard.Load() {
			p.heardAt.Store(int64(time.Since(p.start)))
			p.heard.Store(true)
		}
		switch t {
		case framing.TypeData, framing.TypeOffload:
			if err := p.toDevice(t, payload, false); err != nil {
				return err
			}
			if p.paced {
				// An Ack per ackEvery bytes. (An Ack per burst read as
				// well, which a bug kept from happening until it was
				// fixed, then halved the throughput at 40 ms RTT in the
				// lab: the Acks going back cost the processes and the
				// link emulator more than the pacer gained by them.)
				n := p.received.Add(uint64(len(payload)))
				if n-p.ackTold >= ackEvery {
					p.ackTold = n
					wake(p.ackNow)
				}
			}
		case framing.TypeCopy:
			// A second copy of a packet sent over another stream too:
			// written only if it came first.
			if len(payload) > 1 && (framing.Type(payload[0]) == framing.TypeData ||
				framing.Type(payload[0]) == framing.TypeOffload && p.offload != 0) {
				if err := p.toDevice(framing.Type(payload[0]), payload[1:], true); err != nil {
					return err
				}
			}
		case framing.TypeAck:
			if len(payload) == framing.AckLen {
				if v := binary.BigEndian.Uint64(payload); v > p.acked.Load() {
					p.acked.Store(v)
					wake(p.wake)
				}
			}
		case framing.TypePing:
			var m pingMsg
			m.n = copy(m.b[:], payload)
			select {
			case pongs <- m:
			default: // a flood of pings gets fewer pongs
			}
		case framing.TypePong:
			if len(payload) == 8 {
				if rtt := time.Since(p.start) - time.Duration(binary.BigEndian.Uint64(payload)); rtt >= 0 && rtt < time.Hour {
					p.stats.RTT.Store(int64(rtt))
				}
			}
		case framing.TypeClose:
			p.log.Info("peer closed the tunnel", "reason", policy.Printable(payload))
			return errPeerClosed
		case framing.TypeError:
			return &RemoteError{Msg: policy.Printable(payload)}
		case framing.TypeHello:
			return errors.New("tunnel: protocol error: second hello from the peer")
		default:
			p.log.Debug("ignoring unknown frame", "type", t, "len", len(payload))
		}
	}
}

// toDevice writes the packet of one Data or Offload frame to the device,
// if it passes the checks; only a closed device is an error. A second
// copy (a Copy frame's) is written only when the stripe has not seen the
// first.
func (p *pump) toDevice(t framing.Type, payload []byte, second bool) error {
	pkt, out := payload, payload
	if t == framing.TypeOffload {
		if _, err := tun.CheckVnet(payload, p.offload); err != nil {
			if p.stats.Malformed.Add(1) == 1 {
				p.log.Warn("dropping offload frames from the peer with a bad virtio-net header", "err", err, AdminOnly)
			}
			return nil
		}
		pkt = payload[tun.VnetHdrLen:]
	}
	if second && p.stripe == nil {
		return nil // no stripe to tell it from the first
	}
	if p.stripe != nil && p.stripe.again(pkt, second) {
		p.stats.Twice.Add(1)
		return nil
	}
	if t == framing.TypeData && p.vnet {
		// The device takes every packet behind a header: a blank one
		// says it is plain.
		if len(payload) > len(p.vnetBuf)-tun.VnetHdrLen {
			p.stats.Dropped.Add(1)
			return nil
		}
		clear(p.vnetBuf[:tun.VnetHdrLen])
		out = p.vnetBuf[:tun.VnetHdrLen+copy(p.vnetBuf[tun.VnetHdrLen:], payload)]
	}
	p.wbuf[0] = out
	if _, err := p.dev.Write(p.wbuf, 0); err != nil {
		if errors.Is(err, ErrDropped) {
			return nil // the session's filter counted it
		}
		if isClosed(err) {
			return fmt.Errorf("tunnel: writing to %s: %w", p.dev.Name(), err)
		}
		// A packet the kernel refuses (malformed, wrong family) costs
		// that packet, not the tunnel.
		p.stats.Dropped.Add(1)
		p.log.Debug("device refused a packet", "len", len(pkt), "err", err)
		return nil
	}
	p.stats.PacketsIn.Add(1)
	p.stats.BytesIn.Add(uint64(len(pkt)))
	return nil
}
