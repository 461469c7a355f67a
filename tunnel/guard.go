package tunnel

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/sshvpn/sshvpn/tun"
)

// GuardConfig is what a server session's device lets through (see Guard).
type GuardConfig struct {
	// Addresses, in tun mode: packets from the client must come from its
	// tunnel addresses (Peer, each address alone) or a network behind it
	// (Behind: --allow-source, routes granted to it), and packets to the
	// client must go to the same. Tap mode, which carries Ethernet frames,
	// checks no addresses.
	Addresses bool
	Peer      []netip.Prefix
	Behind    []netip.Prefix
	// Rate caps each direction, counted as the wire carries it.
	Rate RateLimit
	// Stats counts what is dropped: Dropped (from the client),
	// DroppedOut (to it), DroppedRate (either way, over the rate).
	Stats  *Stats
	Logger *slog.Logger
}

// Guard wraps a server session's device so that the link and its pumps
// see only what the session may carry: what the client writes (Write) and
// what the device reads for it (Read, TryRead) pass the anti-spoofing
// filter and the rate limit, or are dropped and counted. A packet the
// guard drops on Write is reported as ErrDropped, so that the writer
// counts it no more.
func Guard(dev tun.Device, cfg GuardConfig) tun.Device {
	g := &guard{Device: dev, vnet: dev.Offloads() != 0, stats: cfg.Stats, log: logger(cfg.Logger),
		limitIn: allow(cfg.Rate), limitOut: allow(cfg.Rate)}
	if g.stats == nil {
		g.stats = new(Stats)
	}
	if cfg.Addresses {
		g.in = newAddrFilter(cfg.Peer, cfg.Behind, false)
		g.out = newAddrFilter(cfg.Peer, cfg.Behind, true)
	}
	return g
}

// GuardQueue is guarded's guard around q, another queue of the same
// multi-queue device (a stream of a striped session): the same filters,
// and the same rate limit, which the streams share.
func GuardQueue(guarded, q tun.Device) tun.Device {
	g, ok := guarded.(*guard)
	if !ok {
		return q
	}
	c := *g
	c.Device = q
	return &c
}

// SetQueue is the guarded device's (see tun.Queue).
func (g *guard) SetQueue(attached bool) error {
	if q, ok := g.Device.(tun.Queue); ok {
		return q.SetQueue(attached)
	}
	return fmt.Errorf("tunnel: %s is not one queue of several", g.Name())
}

type guard struct {
	tun.Device
	vnet              bool // packets carry a virtio-net header
	in, out           *addrFilter
	limitIn, limitOut func(packets, bytes int) bool
	stats             *Stats
	log               *slog.Logger
}

// split returns the packet in b and its virtio-net header (a zero one
// without).
func (g *guard) split(b []byte) ([]byte, tun.VnetHdr, bool) {
	if !g.vnet {
		return b, tun.VnetHdr{}, true
	}
	h, ok := tun.ParseVnetHdr(b)
	if !ok {
		return nil, h, false
	}
	return b[tun.VnetHdrLen:], h, true
}

// Write writes the packets the client may send, each on its own; the first
// it drops ends the call with ErrDropped.
func (g *guard) Write(bufs [][]byte, offset int) (int, error) {
	for i := range bufs {
		pkt, h, ok := g.split(bufs[i][offset:])
		switch {
		case !ok:
			g.stats.Dropped.Add(1)
			return i, ErrDropped
		case g.in != nil && !g.in.accept(pkt):
			if g.stats.Dropped.Add(1) == 1 {
				if src, ok := packetAddr(pkt, false); ok {
					g.log.Warn("dropping packets from the peer with a source address it may not use (see --allow-source)", "src", src, AdminOnly)
				} else {
					g.log.Warn("dropping frames from the peer that are not IP packets", "len", len(pkt), AdminOnly)
				}
			}
			return i, ErrDropped
		case g.limitIn != nil && !g.limitIn(h.Wire(pkt)):
			if g.stats.DroppedRate.Add(1) == 1 {
				g.log.Warn("dropping packets over the session's rate limit (--rate)", AdminOnly)
			}
			return i, ErrDropped
		}
		if _, err := g.Device.Write(bufs[i:i+1], offset); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// Read reads packets for the client; one it may not have comes back with
// size 0, which readers skip.
func (g *guard) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := g.Device.Read(bufs, sizes, offset)
	for i := range n {
		// A packet longer than the buffer (the kernel reports its whole
		// length) is the reader's to drop.
		if sizes[i] > 0 && sizes[i] <= len(bufs[i])-offset && !g.admitOut(bufs[i][offset:offset+sizes[i]]) {
			sizes[i] = 0
		}
	}
	return n, err
}

// TryRead reads the next packet for the client that is queued, if any.
func (g *guard) TryRead(buf []byte) (int, error) {
	for {
		n, err := g.Device.TryRead(buf)
		if err != nil || n == 0 || n > len(buf) || g.admitOut(buf[:n]) {
			return n, err
		}
	}
}

// admitOut reports whether a packet the device read (behind its header,
// if any) may go to the client, and counts it if not.
func (g *guard) admitOut(b []byte) bool {
	pkt, h, ok := g.split(b)
	switch {
	case !ok:
		return true // not the guard's to judge: the link drops it
	case g.out != nil && !g.out.accept(pkt):
		g.stats.DroppedOut.Add(1)
		return false
	case g.limitOut != nil && !g.limitOut(h.Wire(pkt)):
		g.stats.DroppedRate.Add(1)
		return false
	}
	return true
}
