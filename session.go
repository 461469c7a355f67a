package sshvpn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

// Opener opens and configures this side's device once the handshake has
// decided the tunnel. The session closes the device when it ends.
type Opener func(Tunnel) (tun.Device, error)

// ClientConfig configures RunClient.
type ClientConfig struct {
	Mode      tun.Mode       // proposed mode; ModeTUN when empty
	MTU       int            // proposed MTU; 0 lets the server choose
	Addrs     []netip.Prefix // proposed addresses for this side
	PeerAddrs []netip.Prefix // proposed addresses for the server
	// RemoteDev asks the server for a device name, RemoteRoutes for routes
	// on the server to networks behind this client. The server refuses
	// unless its policy allows them.
	RemoteDev    string
	RemoteRoutes []netip.Prefix
	// Nets are this machine's own addresses and connected networks (see
	// tun.Nets), less the tunnel device's: the client refuses tunnel
	// addresses from the server that overlap them.
	Nets []tun.Net
	Open Opener

	Keepalive time.Duration // interval between pings; DefaultKeepalive when 0
	DeadAfter time.Duration // silence that ends the session; DefaultDeadAfter when 0
	Logger    *slog.Logger  // nil discards
	Stats     *Stats        // optional counters
}

// ServerConfig configures Serve. Its fields are the server's policy: a client
// proposal is used only where the policy leaves a field empty.
type ServerConfig struct {
	Mode      tun.Mode       // ModeTUN when empty
	MTU       int            // when 0, the client's proposal or tun.DefaultMTU
	Addrs     []netip.Prefix // this side's addresses; when empty, the client's proposal
	PeerAddrs []netip.Prefix // the client's addresses; when empty, the client's proposal
	Dev       string         // the device the server's command line names, if any
	// Assign, if set, decides the addresses instead of Addrs and PeerAddrs
	// (a --pool lease): the server's and the client's.
	Assign func() (server, client []netip.Prefix, err error)
	// AllowSources are networks behind the client: packets from the client
	// must come from its tunnel address, one of these, or a route granted
	// to it, and packets to it must go to the same. In tap mode, which
	// carries Ethernet frames, addresses are not checked.
	AllowSources []netip.Prefix
	// AllowRoutes are the networks inside which the client may ask the
	// server to route networks behind it into the tunnel.
	AllowRoutes []netip.Prefix
	// Pool are the networks Assign leases from: no client's route may
	// overlap them.
	Pool []netip.Prefix
	// Nets are the server's own addresses and connected networks (see
	// tun.Nets), which no proposed address and no granted route may
	// overlap.
	Nets []tun.Net
	// Rate caps each direction of the session's traffic.
	Rate RateLimit
	Open Opener

	Keepalive time.Duration
	DeadAfter time.Duration
	Logger    *slog.Logger
	Stats     *Stats
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// newPump joins dev and the framed transport, with the keepalive defaults
// for zero durations.
func newPump(dev tun.Device, conn io.Closer, r *framing.Reader, w *framing.Writer,
	keepalive, deadAfter time.Duration, log *slog.Logger, stats *Stats) *pump {
	return &pump{dev: dev, conn: conn, r: r, w: w, log: log, stats: stats,
		keepalive: orDefault(keepalive, DefaultKeepalive), deadAfter: orDefault(deadAfter, DefaultDeadAfter)}
}

// RunClient runs the client side of one tunnel over conn until ctx ends (an
// orderly close, returning nil), the server closes, or something fails. It
// closes conn before returning.
func RunClient(ctx context.Context, conn io.ReadWriteCloser, cfg ClientConfig) error {
	defer conn.Close()
	log := logger(cfg.Logger)
	mode := cfg.Mode
	if mode == "" {
		mode = tun.ModeTUN
	}
	r := framing.NewReader(conn)
	w := framing.NewWriter(conn)
	hello := &framing.Hello{Role: "client", Software: Software, Mode: string(mode), MTU: cfg.MTU,
		Addrs: cfg.Addrs, PeerAddrs: cfg.PeerAddrs, WantDev: cfg.RemoteDev, Routes: cfg.RemoteRoutes}
	// The hello is written while the answer is read: the server writes its
	// preamble before it reads, so on an unbuffered transport (net.Pipe)
	// writing first would deadlock. When both fail, the read's error wins:
	// a server that went away is better explained by io.EOF (or the
	// transport's own error for it) than by a broken pipe.
	wrote := make(chan error, 1)
	go func() { wrote <- writeHello(w, hello) }()
	log.Debug("handshake: sending hello", "mode", mode, "mtu", cfg.MTU, "addrs", cfg.Addrs, "peer_addrs", cfg.PeerAddrs)

	type result struct {
		h   *framing.Hello
		err error
	}
	res := make(chan result, 1)
	go func() {
		if err := readPreamble(r); err != nil {
			res <- result{err: err}
			return
		}
		// The server is there; its answer must not take forever.
		timer := time.AfterFunc(answerTimeout, func() { conn.Close() })
		h, err := readHello(r)
		if !timer.Stop() {
			err = fmt.Errorf("sshvpn: the server did not answer the handshake within %v", answerTimeout)
		}
		res <- result{h, err}
	}()
	var got result
	select {
	case got = <-res:
	case <-ctx.Done():
		conn.Close()
		<-res
		<-wrote
		return nil
	}
	if got.err != nil {
		conn.Close() // unblocks a hello the server will never read
		<-wrote
		return got.err
	}
	var werr error
	select {
	case werr = <-wrote:
	case <-ctx.Done():
		conn.Close()
		<-wrote
		return nil
	}
	if werr != nil {
		return werr
	}
	h := got.h
	// From here on, the server has opened its device and waits for
	// packets: when the client gives up, it says why in an Error frame.
	log.Debug("handshake: server answered", "software", h.Software, "mode", h.Mode, "mtu", h.MTU,
		"addrs", h.Addrs, "peer_addrs", h.PeerAddrs, "dev", h.Dev)
	if h.Role != "server" {
		return refuse(w, fmt.Errorf("sshvpn: protocol error: the remote answered as %q, not as a server", h.Role))
	}
	if err := checkPrefixes("address", h.Addrs); err != nil {
		return refuse(w, fmt.Errorf("sshvpn: the server's answer: %v", err))
	}
	if err := checkPrefixes("address", h.PeerAddrs); err != nil {
		return refuse(w, fmt.Errorf("sshvpn: the server's answer: %v", err))
	}
	if err := CheckPair(h.Addrs, h.PeerAddrs); err != nil {
		return refuse(w, fmt.Errorf("sshvpn: the server's answer: %v", err))
	}
	for _, p := range slices.Concat(h.PeerAddrs, h.Addrs) {
		if n, ok := overlappingNet(p, cfg.Nets); ok {
			return refuse(w, fmt.Errorf("sshvpn: the server assigned the tunnel address %v, which overlaps %v, a network this machine is on (%s): "+
				"the tunnel would take that network's traffic (and perhaps the SSH connection itself); ask the server's admin for addresses outside it", p, n.Prefix, inUse(n)))
		}
	}
	if tun.Mode(h.Mode) != mode {
		return refuse(w, fmt.Errorf("sshvpn: the server runs the tunnel in %s mode, but %s mode was asked for", h.Mode, mode))
	}
	if len(h.PeerAddrs) == 0 && len(h.Addrs) == 0 && mode == tun.ModeTUN {
		return refuse(w, errors.New("sshvpn: the server decided no addresses for the tunnel"))
	}
	t := Tunnel{Mode: mode, MTU: h.MTU, Addrs: h.PeerAddrs, PeerAddrs: h.Addrs, Routes: h.Routes}
	if CheckMTU(t.MTU) != nil {
		return refuse(w, fmt.Errorf("sshvpn: the server chose an unusable MTU %d (%d to %d)", t.MTU, MinMTU, MaxMTU))
	}
	if !sameSet(t.Addrs, cfg.Addrs) || !sameSet(t.PeerAddrs, cfg.PeerAddrs) {
		log.Info("the server assigned the tunnel addresses", "local", t.Addrs, "remote", t.PeerAddrs)
	}
	dev, err := cfg.Open(t)
	if err != nil {
		return refuse(w, err)
	}
	log.Info("tunnel up", "dev", dev.Name(), "local", t.Addrs, "remote", t.PeerAddrs, "mtu", t.MTU, "remote_dev", h.Dev)
	return newPump(dev, conn, r, w, cfg.Keepalive, cfg.DeadAfter, log, cfg.Stats).run(ctx)
}

// Serve runs the server side of one tunnel over conn, as "sshvpn --remote".
// A client that goes away without a goodbye ends Serve with an error wrapping
// io.EOF.
func Serve(ctx context.Context, conn io.ReadWriteCloser, cfg ServerConfig) error {
	defer conn.Close()
	log := logger(cfg.Logger)
	r := framing.NewReader(conn)
	w := framing.NewWriter(conn)
	// The preamble goes out at once, so a client sees at the first bytes
	// whether the stream is clean.
	if err := w.WritePreamble(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sshvpn: writing to the client: %w", err)
	}
	timer := time.AfterFunc(handshakeTimeout, func() { conn.Close() })
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err := readPreamble(r)
	var h *framing.Hello
	if err == nil {
		h, err = readHello(r)
	}
	if !stop() {
		timer.Stop()
		return nil // asked to stop during the handshake
	}
	if !timer.Stop() {
		return fmt.Errorf("sshvpn: no handshake from the client within %v", handshakeTimeout)
	}
	if err != nil {
		return refuse(w, err)
	}
	log.Debug("handshake: client hello", "software", h.Software, "mode", h.Mode, "mtu", h.MTU,
		"addrs", h.Addrs, "peer_addrs", h.PeerAddrs)
	t, err := decide(cfg, h)
	if err != nil {
		return refuse(w, err)
	}
	dev, err := cfg.Open(t)
	if err != nil {
		return refuse(w, err)
	}
	answer := &framing.Hello{Role: "server", Software: Software, Mode: string(t.Mode), MTU: t.MTU,
		Addrs: t.Addrs, PeerAddrs: t.PeerAddrs, Dev: dev.Name()}
	if err := w.WriteHello(answer); err == nil {
		err = w.Flush()
	}
	if err != nil {
		dev.Close()
		return fmt.Errorf("sshvpn: writing to the client: %w", err)
	}
	log.Info("tunnel up", "dev", dev.Name(), "local", t.Addrs, "remote", t.PeerAddrs, "mtu", t.MTU)
	p := newPump(dev, conn, r, w, cfg.Keepalive, cfg.DeadAfter, log, cfg.Stats)
	p.limitIn, p.limitOut = cfg.Rate.allow(), cfg.Rate.allow()
	if t.Mode == tun.ModeTUN {
		// Anti-spoofing: the client may use its own tunnel addresses and
		// the networks the admin put behind it, nothing else.
		behind := slices.Concat(cfg.AllowSources, t.Routes)
		p.accept = newAddrFilter(t.PeerAddrs, behind, false).accept
		p.acceptOut = newAddrFilter(t.PeerAddrs, behind, true).accept
	}
	return p.run(ctx)
}

// refuse tells the peer why this side gives up, then returns err, marked
// as told (see Told) if the peer could be sent it.
func refuse(w *framing.Writer, err error) error {
	msg := err.Error()
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	if w.WriteFrame(framing.TypeError, []byte(msg)) != nil || w.Flush() != nil {
		return err
	}
	return toldError{err}
}

// RefuseClient is the server's answer when it cannot serve at all (its own
// command line is wrong, say): it writes the preamble and an Error frame
// with err to conn, so that the client shows the reason as the server's,
// and returns err marked as told (see Told) if that worked.
func RefuseClient(conn io.Writer, err error) error {
	w := framing.NewWriter(conn)
	if w.WritePreamble() != nil {
		return err
	}
	return refuse(w, err)
}

// toldError is an error the peer was sent in an Error frame.
type toldError struct{ error }

func (e toldError) Unwrap() error { return e.error }

// Told reports whether the peer was sent err in an Error frame. The remote
// side does not print such an error on its stderr as well: sshd passes that
// to the client, which would show the refusal twice.
func Told(err error) bool {
	var t toldError
	return errors.As(err, &t)
}

func writeHello(w *framing.Writer, h *framing.Hello) error {
	if err := w.WritePreamble(); err != nil {
		return err
	}
	if err := w.WriteHello(h); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("sshvpn: writing the handshake: %w", err)
	}
	return nil
}

func isClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADF) || errors.Is(err, io.ErrClosedPipe)
}
