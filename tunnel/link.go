package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

// LinkConfig configures a Link.
type LinkConfig struct {
	// Host configures the host around the device for each tunnel the link
	// is brought to (addresses, routes, NAT, DNS, hooks, the session's
	// record; see package stack), and undoes it all when the link closes.
	// Nil leaves the host alone (tests, or a device the admin configured).
	Host   Host
	Logger *slog.Logger
	Stats  *Stats // counters for the whole run; allocated when nil
	// Queue says that the device is one queue of a multi-queue device
	// (one stream of a striped tunnel; see tun.Queue): the link takes it
	// out of the device's set while no connection is attached, so that
	// the kernel sends every flow through the streams that are up.
	Queue bool
	// Stripe, if set, places the flows the link reads on the streams of
	// the stripe it joins (see Stripe): the client's links of a striped
	// tunnel.
	Stripe *Stripe
}

// Host is what a link asks of the host around its device.
type Host interface {
	// Up configures the host for tunnel t, reached through the SSH
	// server at server (if known); again for each reconnect.
	Up(t Tunnel, server netip.Addr) error
	// Detached says that the connection is gone and another may follow.
	Detached()
	// Down undoes everything Up did.
	Down() error
}

// HostFunc is a Host made of its Up alone: nothing to undo.
type HostFunc func(t Tunnel, server netip.Addr) error

func (f HostFunc) Up(t Tunnel, server netip.Addr) error { return f(t, server) }
func (f HostFunc) Detached()                            {}
func (f HostFunc) Down() error                          { return nil }

// A Link is this side's end of the tunnel for a whole run: the device and
// the host around it (through its Host). Connections come
// and go beneath it: each one, after its handshake, brings the link to the
// tunnel it agreed (Up) and attaches its pump. The link reads the device
// all along; while no connection is attached, what it reads is dropped and
// counted (Stats.DroppedDetached), never queued. Only Close closes the
// device.
type Link struct {
	dev   tun.Device
	cfg   LinkConfig
	log   *slog.Logger
	stats *Stats

	vnet    bool                 // the device's packets carry a virtio-net header
	current atomic.Pointer[slot] // the attached connection's sink, if any
	// deliver is held by the device reader while it frames a packet for a
	// pump: a pump that detached waits for it, after which no packet can
	// reach it.
	deliver sync.Mutex
	dead    chan struct{} // closed when reading the device failed
	readErr error         // why, once dead is closed
	closing chan struct{}
	read    sync.WaitGroup

	mu          sync.Mutex // Up, Detached, Close
	up          bool       // it came up once: a later Up is a reconnect
	ups         int        // how often it came up
	droppedAtUp uint64     // DroppedDetached when the link last came up
	tunnel      Tunnel     // the tunnel last brought up
	closeOnce   sync.Once
	closeErr    error
}

// errLinkDead marks the end of a link whose device can no longer be read.
var errLinkDead = errors.New("tunnel: the device failed")

// NewLink takes dev over and starts reading it.
func NewLink(dev tun.Device, cfg LinkConfig) *Link {
	l := &Link{dev: dev, cfg: cfg, log: logger(cfg.Logger), stats: cfg.Stats, vnet: dev.Offloads() != 0,
		dead: make(chan struct{}), closing: make(chan struct{})}
	if l.stats == nil {
		l.stats = new(Stats)
	}
	l.setQueue(false) // until a connection is attached
	if cfg.Stripe != nil {
		cfg.Stripe.add(l)
	}
	l.read.Add(1)
	go l.readDevice()
	return l
}

// setQueue puts the link's queue in its device's set or takes it out.
func (l *Link) setQueue(attached bool) {
	if !l.cfg.Queue {
		return
	}
	q, ok := l.dev.(tun.Queue)
	if !ok {
		return
	}
	if err := q.SetQueue(attached); err != nil {
		l.log.Debug("the device's queue", "attached", attached, "err", err)
	}
}

// Device is the link's device.
func (l *Link) Device() tun.Device { return l.dev }

// Stats are the link's counters.
func (l *Link) Stats() *Stats { return l.stats }

// Tunnel is the tunnel the link was last brought up to.
func (l *Link) Tunnel() Tunnel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tunnel
}

// Up brings the link to tunnel t: its Host configures the host around the
// device for t, with the SSH server at server (if known).
func (l *Link) Up(t Tunnel, server netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Host != nil {
		if err := l.cfg.Host.Up(t, server); err != nil {
			return err
		}
	}
	if d := l.stats.DroppedDetached.Load(); l.up && d > l.droppedAtUp {
		l.log.Info("packets dropped while the tunnel was down", "dropped", d-l.droppedAtUp)
	}
	l.droppedAtUp = l.stats.DroppedDetached.Load()
	l.up, l.tunnel = true, t
	l.ups++
	return nil
}

// Ups is how often the link came up: a connection whose handshake brought
// it up adds one.
func (l *Link) Ups() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ups
}

// Detached says that the connection is gone and another may follow.
func (l *Link) Detached() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Host != nil {
		l.cfg.Host.Detached()
	}
}

// Close ends the link: the host's configuration is undone, then the device
// is closed. It waits for the device reader to stop.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		if l.cfg.Host != nil {
			if err := l.cfg.Host.Down(); err != nil {
				l.log.Debug("undoing the host's configuration", "err", err) // each failure was logged by its stage
			}
		}
		l.mu.Unlock()
		close(l.closing)
		l.closeErr = l.dev.Close()
		l.read.Wait()
	})
	return l.closeErr
}

// Err is why the device can no longer be read, once that has happened.
func (l *Link) Err() error {
	select {
	case <-l.dead:
		return l.readErr
	default:
		return nil
	}
}

// A sink is where the link's device reader frames the packets it reads,
// for the connection attached to the link (its pump): the seam between
// the link, which outlives connections, and one connection's sender. The
// reader reads each packet straight into the sink's frame buffer (next)
// and commits it there as a frame (commit), or copies in one it read
// elsewhere (put); flush sends what is buffered, in one write per burst.
type sink interface {
	taking() bool // still takes packets
	next(n int) ([]byte, error)
	commit(typ framing.Type, n int) error
	put(typ framing.Type, payload []byte) bool     // false: no room
	putCopy(typ framing.Type, payload []byte) bool // as put, as a second copy (a Copy frame)
	flush()
	fail(err error)        // reading the device into it failed
	offloads() tun.Offload // what the peer agreed to take
	sent(pkt []byte)       // count a packet that left
	droppedOut()           // count one that did not
}

// slot holds the attached sink.
type slot struct{ s sink }

// attach makes s the sink packets from the device go to.
func (l *Link) attach(s sink) {
	l.current.Store(&slot{s})
	l.setQueue(true)
}

// detach stops handing packets to s; once it returns, no packet reaches
// s.
func (l *Link) detach(s sink) {
	if cur := l.current.Load(); cur != nil && cur.s == s {
		if l.current.CompareAndSwap(cur, nil) {
			l.setQueue(false)
		}
	}
	l.deliver.Lock()
	l.deliver.Unlock() // (only waited for a delivery in progress)
}

// Attached reports whether a connection is attached to the link now.
func (l *Link) Attached() bool { return l.attached() != nil }

// attached is the sink attached now, if any.
func (l *Link) attached() sink {
	if cur := l.current.Load(); cur != nil {
		return cur.s
	}
	return nil
}

// readDevice reads the device until it is closed. While a pump is
// attached it reads straight into that pump's frame buffer, takes what
// else is queued without waiting, and flushes once the device has nothing
// more: one write to the transport per burst, and none of the goroutine
// handoffs that would delay a lone packet. While none is attached, what it
// reads is dropped and counted.
func (l *Link) readDevice() {
	defer l.read.Done()
	scratch := make([]byte, readSize)
	one, sizes := make([][]byte, 1), make([]int, 1)
	var held sink // the sink whose frame buffer has frames to flush
	// Other links' sinks that were handed packets in this burst (a
	// stripe's), to be woken with held.
	var others []sink
	flush := func() {
		if held != nil {
			held.flush()
			held = nil
		}
		for _, o := range others {
			o.flush()
		}
		others = others[:0]
	}
	for {
		p := l.attached()
		if p != nil && !p.taking() {
			p = nil
		}
		if held != nil && held != p {
			held.flush()
			held = nil
		}
		buf := scratch
		if p != nil {
			room, err := p.next(readSize)
			if err != nil {
				p.fail(err)
				continue
			}
			buf = room
		}
		var n int
		var err error
		if held != nil || len(others) > 0 {
			if n, err = l.dev.TryRead(buf); err == nil && n == 0 {
				flush() // the device is empty: send the burst
				continue
			}
		} else {
			one[0] = buf
			_, err = l.dev.Read(one, sizes, 0)
			n = sizes[0]
		}
		if err != nil {
			flush()
			select {
			case <-l.closing:
			default:
				l.readErr = fmt.Errorf("%w: reading from %s: %w", errLinkDead, l.dev.Name(), err)
				close(l.dead)
			}
			return
		}
		if n == 0 || n > len(buf) { // nothing, or truncated: drop it
			continue
		}
		if q := l.handle(buf[:n], p, &others); q != nil {
			held = q
		}
	}
}

// readSize is the most one device read takes: a super-packet and its
// virtio-net header, or any packet whatever the MTU is now (an admin or a
// hook may raise it later, and the kernel reports a packet longer than the
// buffer by its full length, having copied only a part).
const readSize = framing.MaxOffloadPayload

// handle frames one packet read from the device for the sink that
// carries it and returns that sink when it is the link's own: the
// attached one, or, in a stripe, the one its flow was placed on, which
// gets a copy and is added to others, to be woken once the burst ends
// (as is the one that carries a ping's second copy).
func (l *Link) handle(buf []byte, in sink, others *[]sink) sink {
	if s := l.cfg.Stripe; s != nil {
		to, twin := s.route(l, l.vnet, buf)
		if t, ok := twin.(*Link); ok && twin != to {
			// First: framing in place may move the packet in buf.
			if p := t.frame(buf, nil, true); p != nil {
				*others = addSink(*others, p)
			}
		}
		if t, ok := to.(*Link); ok && t != l {
			if p := t.frame(buf, nil, false); p != nil {
				t.stats.HandedOver.Add(1)
				*others = addSink(*others, p)
			}
			return nil
		}
	}
	return l.frame(buf, in, false)
}

// addSink adds p to sinks unless it is there.
func addSink(sinks []sink, p sink) []sink {
	for _, o := range sinks {
		if o == p {
			return sinks
		}
	}
	return append(sinks, p)
}

// frame frames one packet read from the device for the attached sink, if
// any, and returns that sink when it did. in is the sink whose frame
// buffer the packet was read into (nil: scratch, or another link's): when
// another is attached by now, the packet is copied to it; second makes
// the copy a Copy frame. It never writes to the transport, so that
// detach, which waits for it, never waits for the network.
func (l *Link) frame(buf []byte, in sink, second bool) sink {
	l.deliver.Lock()
	defer l.deliver.Unlock()
	p := l.attached()
	if p == nil || !p.taking() {
		l.stats.DroppedDetached.Add(1)
		return nil
	}
	typ, payload, pkt := framing.TypeData, buf, buf
	var h tun.VnetHdr // without a header, the packet is a plain one
	if l.vnet {
		var ok bool
		if h, ok = tun.ParseVnetHdr(buf); !ok || len(buf) == tun.VnetHdrLen {
			p.droppedOut()
			return nil
		}
		pkt = buf[tun.VnetHdrLen:]
		// What the peer did not agree to take is not sent: a
		// super-packet left from offloads since turned off, say.
		if h.Needs(pkt[0]>>4 == 6)&^p.offloads() != 0 {
			p.droppedOut()
			return nil
		}
		if p.offloads() != 0 {
			typ = framing.TypeOffload
		} else {
			payload = pkt // plain: the header stays behind
		}
	}
	if p == in {
		// In place: the packet sits where the frame's payload goes,
		// unless the header it no longer needs is in front of it.
		if len(payload) != len(buf) {
			copy(buf, payload)
		}
		if err := p.commit(typ, len(payload)); err != nil {
			p.droppedOut()
			return nil
		}
	} else {
		// Read for a pump that has gone since, or by another link:
		// copy, without flushing.
		put := p.put
		if second {
			put = p.putCopy
		}
		if !put(typ, payload) {
			l.stats.DroppedDetached.Add(1)
			return nil
		}
	}
	p.sent(pkt)
	return p
}
