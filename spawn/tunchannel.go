package spawn

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"

	"golang.org/x/crypto/ssh"
)

// OpenSSHTun is the PacketDialer for a stock sshd with PermitTunnel and no
// sshvpn at all: over an in-process SSH connection (Native's settings) it
// opens OpenSSH's own tun@openssh.com channel, the one "ssh -w" uses, in
// point-to-point mode.
//
// The channel carries IP packets, not sshvpn's framing: there is no
// handshake (the client decides the tunnel; the server's addresses are
// its admin's business), and each packet travels behind a 4-byte address
// family (2 for IPv4, 24 for IPv6, as OpenSSH writes them; Linux's 10 and
// other systems' values are accepted too), one packet per channel message.
// Keepalives are keepalive@openssh.com requests. Ethernet mode is not
// offered: sshvpn's tap mode needs sshvpn on the server.
type OpenSSHTun struct {
	Native
	Unit int // the server's tun unit (tunN); -1 for any
}

// PacketConn is a connection that carries IP packets itself, one per
// message, rather than a byte stream for sshvpn's framing.
type PacketConn interface {
	// ReadPacket reads the next packet into p (at least MaxMTU long) and
	// returns its length; io.EOF when the peer closed.
	ReadPacket(p []byte) (int, error)
	// WritePacket sends one packet. One goroutine writes at a time.
	WritePacket(p []byte) error
	// Keepalive asks the peer for an answer and returns once it came.
	Keepalive() error
	// MaxMTU is the largest packet the peer takes.
	MaxMTU() int
	PeerAddr(ctx context.Context) (netip.Addr, error)
	Err() error
	Close() error
}

// PacketDialer opens packet connections.
type PacketDialer interface {
	DialPackets(ctx context.Context) (PacketConn, error)
}

// The tun@openssh.com channel's parameters (OpenSSH's misc.h).
const (
	tunModePointToPoint = 1
	tunUnitAny          = 0x7fffffff
	afInet              = 2
	afInet6             = 24 // OpenBSD's, as OpenSSH writes it on the wire
)

// DialPackets connects, logs in and opens the tunnel channel.
func (o *OpenSSHTun) DialPackets(ctx context.Context) (PacketConn, error) {
	c, err := o.Native.reach(ctx)
	if err != nil {
		return nil, err
	}
	unit := uint32(tunUnitAny)
	if o.Unit >= 0 {
		unit = uint32(o.Unit)
	}
	ch, reqs, err := c.client.OpenChannel("tun@openssh.com", ssh.Marshal(struct{ Mode, Unit uint32 }{tunModePointToPoint, unit}))
	if err != nil {
		c.closeAll()
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, &ConnectError{Err: fmt.Errorf("the server refused the tun@openssh.com channel (%s): it needs \"PermitTunnel yes\" (or point-to-point) in sshd_config, "+
				"a key without restrict or no-tunnel, and a free tun device (the unit asked for may be busy)", oce.Message)}
		}
		return nil, &ConnectError{Err: fmt.Errorf("opening the tun@openssh.com channel: %w", err), Temp: true}
	}
	go ssh.DiscardRequests(reqs)
	c.remote = "tun@openssh.com"
	return &tunChannel{c: c, ch: ch, br: bufio.NewReaderSize(ch, 4+maxPacket), hdr: make([]byte, 4+40), wbuf: make([]byte, 4+maxPacket)}, nil
}

// tunChannel is one tun@openssh.com channel, a PacketConn.
type tunChannel struct {
	c    *nativeConn
	ch   ssh.Channel
	br   *bufio.Reader
	hdr  []byte // readTunPacket's scratch
	wbuf []byte // a packet behind its address family
	once sync.Once
}

func (tc *tunChannel) ReadPacket(p []byte) (int, error) {
	n, err := readTunPacket(tc.br, tc.hdr, p)
	if err != nil {
		if cerr := tc.c.Err(); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

func (tc *tunChannel) WritePacket(p []byte) error {
	if len(p) == 0 || len(p) > maxPacket {
		return fmt.Errorf("spawn: tun@openssh.com: a packet of %d bytes", len(p))
	}
	af := uint32(afInet)
	if p[0]>>4 == 6 {
		af = afInet6
	}
	binary.BigEndian.PutUint32(tc.wbuf, af)
	n := copy(tc.wbuf[4:], p)
	// One Write, one channel message: OpenSSH takes each message as one
	// packet.
	_, err := tc.ch.Write(tc.wbuf[:4+n])
	if err != nil {
		if cerr := tc.c.Err(); cerr != nil {
			return cerr
		}
	}
	return err
}

func (tc *tunChannel) Keepalive() error {
	_, _, err := tc.c.client.SendRequest("keepalive@openssh.com", true, nil)
	return err
}

func (tc *tunChannel) MaxMTU() int { return maxOpenSSHMTU }

func (tc *tunChannel) PeerAddr(ctx context.Context) (netip.Addr, error) { return tc.c.PeerAddr(ctx) }

// Err says why the channel ended: a server that stopped answering.
func (tc *tunChannel) Err() error { return tc.c.Err() }

func (tc *tunChannel) Close() error {
	tc.once.Do(func() {
		tc.ch.Close()
		tc.c.closeAll()
	})
	return nil
}

// maxOpenSSHMTU is the largest MTU a tun@openssh.com channel takes: sshd drops
// larger datagrams from a tun channel.
const maxOpenSSHMTU = 16000

// maxPacket bounds a packet from the server; a longer IP length field is a
// malformed stream, never an allocation.
const maxPacket = 1 << 16

// readTunPacket reads one packet of the tun@openssh.com stream into pkt
// (at least maxPacket long) and returns its length. The channel is a byte
// stream here, so each packet's end comes from its IP header's length
// field; hdr (44 bytes) is scratch space. A packet whose address family
// and IP version disagree, or whose length is impossible, is an error: the
// stream cannot be trusted past it.
func readTunPacket(br *bufio.Reader, hdr, pkt []byte) (int, error) {
	if _, err := io.ReadFull(br, hdr[:4+1]); err != nil {
		return 0, eofOr(err, "the server closed the tunnel")
	}
	af := binary.BigEndian.Uint32(hdr)
	var n, hlen int
	switch version := hdr[4] >> 4; {
	case version == 4 && af == afInet:
		hlen = 20
		if _, err := io.ReadFull(br, hdr[5:4+hlen]); err != nil {
			return 0, eofOr(err, "a packet was cut short")
		}
		if n = int(binary.BigEndian.Uint16(hdr[4+2:])); n < hlen {
			return 0, fmt.Errorf("spawn: tun@openssh.com: an IPv4 packet of length %d", n)
		}
	case version == 6 && (af == afInet6 || af == 10 || af == 28 || af == 30):
		hlen = 40
		if _, err := io.ReadFull(br, hdr[5:4+hlen]); err != nil {
			return 0, eofOr(err, "a packet was cut short")
		}
		n = hlen + int(binary.BigEndian.Uint16(hdr[4+4:]))
	default:
		return 0, fmt.Errorf("spawn: tun@openssh.com: a packet of address family %d and IP version %d", af, version)
	}
	if n > maxPacket || n > len(pkt) {
		return 0, fmt.Errorf("spawn: tun@openssh.com: a packet of %d bytes (at most %d)", n, maxPacket)
	}
	copy(pkt, hdr[4:4+hlen])
	if _, err := io.ReadFull(br, pkt[hlen:n]); err != nil {
		return 0, eofOr(err, "a packet was cut short")
	}
	return n, nil
}

func eofOr(err error, what string) error {
	if err == io.EOF {
		return err
	}
	return fmt.Errorf("spawn: tun@openssh.com: %s: %w", what, err)
}
