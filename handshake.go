package sshvpn

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/internal/text"
	"github.com/sshvpn/sshvpn/tun"
)

// Software names this build in the handshake.
var Software = "sshvpn dev"

// Tunnel is what the handshake decided, from one side's point of view.
type Tunnel struct {
	Mode      tun.Mode
	MTU       int
	Addrs     []netip.Prefix // this side's tunnel addresses
	PeerAddrs []netip.Prefix // the other side's
	Routes    []netip.Prefix // networks the peer said are behind it (server side: routes granted to the client)
	// Resume is the client's resume token (server side): a new session
	// with the token of the one that holds its addresses takes over.
	Resume string
	// Offload are the offloads in use, once the link is up; on the
	// server before its device is opened (Opener), what the client
	// offered: the device is opened for them only then.
	Offload tun.Offload
}

// handshakeTimeout bounds how long the server waits for the client's
// preamble and Hello. The client's wait for the server's preamble is not
// bounded (ssh may be asking the user for a password); once it has arrived,
// the server's answer must follow within answerTimeout, which leaves room for
// the server's up hook.
const (
	handshakeTimeout = 30 * time.Second
	answerTimeout    = 2 * time.Minute
)

// minBits are the shortest prefixes a peer may propose for tunnel addresses:
// anything wider would claim a large share of the other side's routing.
var minBits = map[bool]int{true: 8, false: 32} // IPv4: /8, IPv6: /32

// The MTU range both sides accept: a device needs at least 576 (the IPv4
// minimum; IPv6 needs 1280, checked with the addresses), and a frame must
// hold the largest packet plus a tap device's Ethernet header.
const (
	MinMTU = 576
	MaxMTU = framing.MaxPayload - tun.Overhead
)

// CheckMTU reports whether mtu is in the range both sides accept.
func CheckMTU(mtu int) error {
	if mtu < MinMTU || mtu > MaxMTU {
		return fmt.Errorf("MTU %d is out of range (%d to %d)", mtu, MinMTU, MaxMTU)
	}
	return nil
}

// maxAddrs caps how many addresses of each kind a Hello may carry.
const maxAddrs = 8

// RemoteError is an Error frame from the peer: it refused or gave up, and
// says why.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "sshvpn: remote: " + e.Msg }

// errProtocol marks a peer that does not speak the protocol as it should.
var errProtocol = errors.New("sshvpn: protocol error")

// errNoHello is returned when the peer's first frame is not a Hello.
var errNoHello = fmt.Errorf("%w: expected a hello frame first", errProtocol)

// readHello reads the peer's Hello, or the Error frame it sent instead.
func readHello(r *framing.Reader) (*framing.Hello, error) {
	t, p, err := r.ReadFrame()
	if err != nil {
		return nil, err
	}
	switch t {
	case framing.TypeHello:
		h, err := framing.ParseHello(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errProtocol, err)
		}
		return h, nil
	case framing.TypeError:
		return nil, &RemoteError{Msg: printable(p)}
	}
	return nil, fmt.Errorf("%w, got %v", errNoHello, t)
}

// readPreamble reads the peer's preamble. An empty stream is reported as
// io.EOF wrapped with context, keeping the transport's own error (such as
// spawn's exit status) when it has one.
func readPreamble(r *framing.Reader) error {
	_, err := r.ReadPreamble()
	if err == io.EOF {
		return fmt.Errorf("sshvpn: the remote closed the connection before the handshake: %w", err)
	}
	return err
}

// checkPrefixes validates addresses from the wire.
func checkPrefixes(what string, ps []netip.Prefix) error {
	if len(ps) > maxAddrs {
		return fmt.Errorf("too many %s (%d, at most %d)", plural(what), len(ps), maxAddrs)
	}
	for _, p := range ps {
		a := p.Addr()
		if !p.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.Is4In6() || a.Zone() != "" ||
			a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return fmt.Errorf("unusable %s %v", what, p)
		}
		if p.Bits() < minBits[a.Is4()] {
			return fmt.Errorf("%s %v is too wide (at most /%d)", what, p, minBits[a.Is4()])
		}
	}
	return nil
}

// plural makes the plural of an English noun phrase such as "address" or
// "requested route".
func plural(s string) string {
	if strings.HasSuffix(s, "s") {
		return s + "es"
	}
	return s + "s"
}

// printable trims and sanitises text from the peer for logs and errors:
// one line of at most 1024 bytes.
func printable(b []byte) string {
	if len(b) > 1024 {
		b = b[:1024]
	}
	return text.Clean(string(b), false)
}

// sameSet reports whether a and b hold the same prefixes in any order.
func sameSet(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	return true
}
