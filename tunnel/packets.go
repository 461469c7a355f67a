package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

// PacketConn is a transport that carries IP packets itself, one per
// message, with no sshvpn on the other end: OpenSSH's tun@openssh.com
// channel. See RunPackets.
type PacketConn interface {
	ReadPacket(p []byte) (int, error) // p is at least MaxMTU long
	WritePacket(p []byte) error       // one writer at a time
	Keepalive() error                 // returns once the peer answered
	MaxMTU() int                      // the largest packet the peer takes
	Close() error
}

// packetQueue is how many packets wait for a PacketConn's writer.
const packetQueue = 256

// RunPackets runs the client side of one connection over a packet
// transport until ctx ends (nil), the peer closes or something fails.
// There is no handshake: the tunnel is the client's proposal (tun mode,
// the MTU capped at what the peer takes); the server's own addresses are
// its admin's business. Keepalives are the transport's, and a peer silent
// for cfg.DeadAfter ends the run. It closes conn before returning, never
// the link.
func RunPackets(ctx context.Context, conn PacketConn, cfg ClientConfig) error {
	defer conn.Close()
	log := logger(cfg.Logger)
	if cfg.Mode != "" && cfg.Mode != tun.ModeTUN {
		return localError{errors.New("tunnel: a packet transport carries IP packets only (tun mode); tap mode needs sshvpn on the server")}
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = tun.DefaultMTU
	}
	mtu = min(mtu, conn.MaxMTU())
	t := Tunnel{Mode: tun.ModeTUN, MTU: mtu, Addrs: cfg.Addrs, PeerAddrs: cfg.PeerAddrs}
	server := cfg.serverAddr(ctx, log)
	link := cfg.Link
	s := &packetSink{conn: conn, stats: link.stats, queue: make(chan []byte, packetQueue), free: make(chan []byte, packetQueue),
		done: make(chan struct{}), failed: make(chan error, 1), cur: make([]byte, readSize)}
	if link.vnet {
		if err := link.dev.SetOffload(0); err != nil {
			return localError{err}
		}
	}
	link.attach(s)
	if err := link.Up(t, server); err != nil {
		s.stop(link)
		return localError{err}
	}
	log.Info("tunnel up", "dev", link.dev.Name(), "local", prefixes(t.Addrs), "remote", prefixes(t.PeerAddrs), "mtu", t.MTU, "server", cfg.Server, "transport", "packets")
	return s.run(ctx, link, orDefault(cfg.Keepalive, DefaultKeepalive), orDefault(cfg.DeadAfter, DefaultDeadAfter))
}

// packetSink is a link's sink for a PacketConn: the device reader copies
// each packet into the queue, and send writes them to the transport, so
// that the reader never waits for the network.
type packetSink struct {
	conn  PacketConn
	stats *Stats
	cur   []byte      // the device reader's buffer
	queue chan []byte // packets for send
	free  chan []byte // spent packet buffers
	done  chan struct{}
	once  sync.Once

	failed chan error // the first failure of the device reader's side
	heard  chan struct{}
}

func (s *packetSink) taking() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *packetSink) next(n int) ([]byte, error) { return s.cur[:min(n, len(s.cur))], nil }

func (s *packetSink) commit(_ framing.Type, n int) error {
	if !s.put(framing.TypeData, s.cur[:n]) {
		return errors.New("queue full")
	}
	return nil
}

// put queues a copy of payload; false when the queue is full or the sink
// stopped.
func (s *packetSink) put(_ framing.Type, payload []byte) bool {
	var b []byte
	select {
	case b = <-s.free:
	default:
	}
	b = append(b[:0], payload...)
	select {
	case s.queue <- b:
		return true
	case <-s.done:
		return false
	default:
		return false
	}
}

func (s *packetSink) putCopy(framing.Type, []byte) bool { return false }
func (s *packetSink) flush()                            {}
func (s *packetSink) offloads() tun.Offload             { return 0 }
func (s *packetSink) droppedOut()                       { s.stats.DroppedOut.Add(1) }

func (s *packetSink) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

func (s *packetSink) sent(pkt []byte) {
	s.stats.PacketsOut.Add(1)
	s.stats.BytesOut.Add(uint64(len(pkt)))
}

// stop detaches the sink from link: no packet reaches it afterwards.
func (s *packetSink) stop(link *Link) {
	s.once.Do(func() {
		close(s.done)
		link.detach(s)
	})
}

// run moves packets until ctx ends, the peer closes or fails, the peer is
// silent for deadAfter, or the link's device fails; then it closes the
// transport, detaches and waits for its goroutines.
func (s *packetSink) run(ctx context.Context, link *Link, keepalive, deadAfter time.Duration) error {
	s.heard = make(chan struct{}, 1)
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); errc <- s.send() }()
	go func() { defer wg.Done(); errc <- s.receive(link) }()
	go func() { defer wg.Done(); s.keepalives(keepalive) }()

	err := s.wait(ctx, link, errc, deadAfter)
	s.conn.Close()
	s.stop(link)
	wg.Wait()
	return err
}

func (s *packetSink) wait(ctx context.Context, link *Link, errc <-chan error, deadAfter time.Duration) error {
	last := time.Now()
	tick := time.NewTicker(min(deadAfter/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case err := <-s.failed:
			return err
		case <-s.heard:
			last = time.Now()
		case now := <-tick.C:
			if silent := now.Sub(last); silent > deadAfter {
				return &DeadPeerError{Silent: silent}
			}
		case <-link.dead:
			return link.Err()
		case <-link.closing:
			return nil
		}
	}
}

// send writes the queued packets to the transport.
func (s *packetSink) send() error {
	for {
		select {
		case b := <-s.queue:
			if err := s.conn.WritePacket(b); err != nil {
				return fmt.Errorf("tunnel: connection to the peer lost: %w", err)
			}
			select {
			case s.free <- b:
			default:
			}
		case <-s.done:
			return nil
		}
	}
}

// receive writes the transport's packets to the device.
func (s *packetSink) receive(link *Link) error {
	buf := make([]byte, tun.VnetHdrLen+framing.MaxPayload)
	off := 0
	if link.vnet {
		off = tun.VnetHdrLen // a blank header says the packet is plain
	}
	one := make([][]byte, 1)
	for {
		n, err := s.conn.ReadPacket(buf[off:])
		if err != nil {
			if err == io.EOF {
				return errors.New("tunnel: the server closed the tunnel")
			}
			return fmt.Errorf("tunnel: connection to the peer lost: %w", err)
		}
		s.alive()
		clear(buf[:off])
		one[0] = buf[:off+n]
		if _, err := link.dev.Write(one, 0); err != nil {
			if isClosed(err) {
				return fmt.Errorf("tunnel: writing to %s: %w", link.dev.Name(), err)
			}
			s.stats.Dropped.Add(1)
			continue
		}
		s.stats.PacketsIn.Add(1)
		s.stats.BytesIn.Add(uint64(n))
	}
}

// alive notes a sign of life from the peer.
func (s *packetSink) alive() {
	select {
	case s.heard <- struct{}{}:
	default:
	}
}

// keepalives asks the peer for an answer every interval, one at a time,
// and keeps its round trip.
func (s *packetSink) keepalives(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.done:
			return
		}
		began := time.Now()
		if s.conn.Keepalive() == nil {
			s.stats.RTT.Store(int64(time.Since(began)))
			s.alive()
		}
	}
}
