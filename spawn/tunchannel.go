package spawn

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/sshvpn/sshvpn/framing"
)

// OpenSSHTun is the Dialer for a stock sshd with PermitTunnel and no sshvpn
// at all: over an in-process SSH connection (Native's settings) it opens
// OpenSSH's own tun@openssh.com channel, the one "ssh -w" uses, in
// point-to-point mode.
//
// The Conn it returns speaks sshvpn's framing, so that the client runs as
// with any transport: a translator answers the client's Hello itself
// (granting its proposal: the server's addresses are its admin's business)
// and moves Data frames as the channel's packets, each behind a 4-byte
// address family (2 for IPv4, 24 for IPv6, as OpenSSH writes them; Linux's
// 10 and other systems' values are accepted too), one packet per channel
// message. Pings become keepalive@openssh.com requests, and their replies
// Pongs, so that a dead server is noticed as with sshvpn. Ethernet mode is
// not offered: sshvpn's tap mode needs sshvpn on the server.
type OpenSSHTun struct {
	Native
	Unit int // the server's tun unit (tunN); -1 for any
}

// The tun@openssh.com channel's parameters (OpenSSH's misc.h).
const (
	tunModePointToPoint = 1
	tunUnitAny          = 0x7fffffff
	afInet              = 2
	afInet6             = 24 // OpenBSD's, as OpenSSH writes it on the wire
)

// Dial connects, logs in and opens the tunnel channel.
func (o *OpenSSHTun) Dial(ctx context.Context) (Conn, error) {
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
	// A socketpair, not net.Pipe: buffered by the kernel, so the two
	// directions do not wait on each other's every write.
	mine, theirs, err := socketPair()
	if err != nil {
		ch.Close()
		c.closeAll()
		return nil, fmt.Errorf("spawn: %w", err)
	}
	t := &translator{ch: ch, client: c.client, pipe: theirs, w: framing.NewWriter(theirs), logf: o.logf, answered: make(chan struct{}), failed: make(chan struct{})}
	c.remote = "tun@openssh.com"
	tc := &tunConn{Conn: mine, c: c, ch: ch, t: t}
	go t.toServer()
	go t.toClient()
	return tc, nil
}

// tunConn is the client's end of the translator.
type tunConn struct {
	net.Conn
	c    *client
	ch   ssh.Channel
	t    *translator
	once sync.Once
}

func (tc *tunConn) PeerAddr(ctx context.Context) (netip.Addr, error) { return tc.c.PeerAddr(ctx) }

// Err says why the tunnel ended: a server that stopped answering, or a
// malformed packet from it.
func (tc *tunConn) Err() error {
	if err := tc.c.Err(); err != nil {
		return err
	}
	return tc.t.err()
}

func (tc *tunConn) Read(p []byte) (int, error) {
	n, err := tc.Conn.Read(p)
	return explained(n, err, tc.Err)
}

func (tc *tunConn) Write(p []byte) (int, error) {
	n, err := tc.Conn.Write(p)
	return explained(n, err, tc.Err)
}

func (tc *tunConn) Close() error {
	tc.once.Do(func() {
		tc.Conn.Close()
		tc.ch.Close()
		tc.c.closeAll()
	})
	return nil
}

// translator turns sshvpn frames into tun@openssh.com packets and back.
type translator struct {
	ch     ssh.Channel
	client *ssh.Client
	pipe   net.Conn
	logf   func(string, ...any)

	mu       sync.Mutex // w, writes to the client
	w        *framing.Writer
	answered chan struct{} // closed once the client has its Hello answer
	failMu   sync.Mutex
	failure  error
	failed   chan struct{} // closed by the first fail
	pinging  sync.Mutex    // one keepalive request at a time
}

func (t *translator) err() error {
	t.failMu.Lock()
	defer t.failMu.Unlock()
	return t.failure
}

// fail ends the translation; the first error is the one reported.
func (t *translator) fail(err error) {
	t.failMu.Lock()
	if t.failure == nil {
		t.failure = err
		close(t.failed)
	}
	t.failMu.Unlock()
	t.pipe.Close()
	t.ch.Close()
}

// send writes one frame to the client and flushes.
func (t *translator) send(typ framing.Type, payload []byte, h *framing.Hello) error {
	return t.sendMore(typ, payload, h, false)
}

// sendMore writes one frame to the client, and flushes unless more follow.
func (t *translator) sendMore(typ framing.Type, payload []byte, h *framing.Hello, more bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var err error
	if h != nil {
		if err = t.w.WritePreamble(); err == nil {
			err = t.w.WriteHello(h)
		}
	} else {
		err = t.w.WriteFrame(typ, payload)
	}
	if err == nil && !more {
		err = t.w.Flush()
	}
	return err
}

// toServer reads the client's frames: the Hello is answered here, Data
// goes to the channel, a Ping is a keepalive@openssh.com request.
func (t *translator) toServer() {
	r := framing.NewReader(t.pipe)
	if _, err := r.ReadPreamble(); err != nil {
		t.fail(err)
		return
	}
	typ, p, err := r.ReadFrame()
	if err != nil || typ != framing.TypeHello {
		t.fail(fmt.Errorf("spawn: tun@openssh.com: expected the client's hello (%v, %v)", typ, err))
		return
	}
	h, err := framing.ParseHello(p)
	if err != nil {
		t.fail(err)
		return
	}
	if h.Mode != "" && h.Mode != "tun" {
		t.send(framing.TypeError, []byte("the tun@openssh.com channel carries IP packets only (tun mode); tap mode needs sshvpn on the server"), nil)
		t.fail(errors.New("spawn: tun@openssh.com: tap mode asked for"))
		return
	}
	mtu := h.MTU
	if mtu == 0 {
		mtu = 1500
	}
	// sshd takes packets of up to about 16 KB from a tun channel.
	mtu = min(mtu, maxOpenSSHMTU)
	answer := &framing.Hello{Role: "server", Software: "OpenSSH tun@openssh.com", Mode: "tun", MTU: mtu, Addrs: h.PeerAddrs, PeerAddrs: h.Addrs}
	if err := t.send(0, nil, answer); err != nil {
		t.fail(err)
		return
	}
	close(t.answered)
	buf := make([]byte, 4+framing.MaxPayload)
	for {
		typ, p, err := r.ReadFrame()
		if err != nil {
			t.fail(err)
			return
		}
		switch typ {
		case framing.TypeData:
			if len(p) == 0 {
				continue
			}
			af := uint32(afInet)
			if p[0]>>4 == 6 {
				af = afInet6
			}
			binary.BigEndian.PutUint32(buf, af)
			n := copy(buf[4:], p)
			// One Write, one channel message: OpenSSH takes each
			// message as one packet.
			if _, err := t.ch.Write(buf[:4+n]); err != nil {
				t.fail(err)
				return
			}
		case framing.TypePing:
			if t.pinging.TryLock() {
				payload := append([]byte(nil), p...)
				go func() {
					defer t.pinging.Unlock()
					if _, _, err := t.client.SendRequest("keepalive@openssh.com", true, nil); err == nil {
						t.send(framing.TypePong, payload, nil)
					}
				}()
			}
		case framing.TypeClose, framing.TypeError:
			t.ch.CloseWrite()
			t.fail(io.EOF)
			return
		}
	}
}

// maxOpenSSHMTU is the largest MTU the translator grants: sshd drops
// larger datagrams from a tun channel.
const maxOpenSSHMTU = 16000

// maxPacket bounds a packet from the server; a longer IP length field is a
// malformed stream, never an allocation.
const maxPacket = framing.MaxPayload

// toClient reads the channel's packets and hands them to the client as
// Data frames.
func (t *translator) toClient() {
	br := bufio.NewReaderSize(t.ch, 4+maxPacket)
	hdr := make([]byte, 4+40)
	pkt := make([]byte, maxPacket)
	first := true
	for {
		n, err := readTunPacket(br, hdr, pkt)
		if err != nil {
			t.fail(err)
			return
		}
		if first {
			// Nothing before the client's Hello is answered: its
			// first bytes must be the preamble.
			select {
			case <-t.answered:
			case <-t.failed:
				return
			}
			first = false
		}
		// Flush when nothing more is waiting: one write for a burst.
		if err := t.sendMore(framing.TypeData, pkt[:n], nil, br.Buffered() > 0); err != nil {
			t.fail(err)
			return
		}
	}
}

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

// socketPair returns the two ends of a Unix stream socketpair.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "tun@openssh.com")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			if i == 1 {
				conns[0].Close()
			} else {
				syscall.Close(fds[1])
			}
			return nil, nil, err
		}
		conns[i] = c
	}
	return conns[0], conns[1], nil
}
