package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

// Opener opens the server's device once the handshake has decided the
// tunnel, and returns the link around it; Serve brings the link up and
// closes it when the session ends. The device it gives the link is the
// one the session may use: a server's is guarded (see Guard).
type Opener func(Tunnel) (*Link, error)

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
	// router.Nets), less the tunnel device's: the client refuses tunnel
	// addresses from the server that overlap them.
	Nets []router.Net
	// Link is this side's device and its network, which outlive the
	// connection: RunClient brings it up to the tunnel the server decides
	// and attaches to it, and leaves it open when it returns.
	Link *Link
	// ServerAddr, if set, tells the SSH server's address as the
	// connection reached it (for pinning its route; see Link.Up).
	ServerAddr func(context.Context) (netip.Addr, error)
	// HandshakeTimeout, if set, bounds the wait for the server's first
	// bytes (unbounded otherwise: ssh may be asking for a password).
	HandshakeTimeout time.Duration
	// Resume is the client's resume token, the same for every connection
	// of one run: a server that still holds this client's previous session
	// lets the new one take over from it.
	Resume string
	// Server names the server in the log ("tunnel up ... server=gw").
	Server string
	// Software names this build in the Hello ("sshvpn 1.2.3");
	// DefaultSoftware when empty.
	Software string
	// Routed is what this side routes into the tunnel: the client warns
	// when the server does not forward it.
	Routed Routed
	// Streams asks the server to stripe the tunnel over this many
	// connections (--streams); Joined hears its answer once the tunnel
	// is up: the session the other connections join, or nil when the
	// server runs the tunnel over one (an older sshvpn).
	Streams int
	Joined  func(*framing.Join)
	// Join makes this connection one more stream of a striped session,
	// on a Link of its own over another queue of the device.
	Join *framing.Join

	Keepalive time.Duration // interval between pings; DefaultKeepalive when 0
	DeadAfter time.Duration // silence that ends the session; DefaultDeadAfter when 0
	Logger    *slog.Logger  // nil discards
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
	// (a --pool lease): the server's and the client's. It gets the
	// client's proposal for its own addresses, which a reconnecting client
	// sets to what it had.
	Assign func(proposed []netip.Prefix) (server, client []netip.Prefix, err error)
	// Admit, if set, is called once the client is granted, before a lease
	// is drawn or the device opened: the server ends the client's older
	// session there when the resume token (Tunnel.Resume) says it is back.
	Admit func(Tunnel) error
	// ClientAddr is the SSH client's address: no route granted to the
	// client may cover it, or the server's answers to the client would go
	// into the tunnel.
	ClientAddr netip.Addr
	// AllowRoutes are the networks inside which the client may ask the
	// server to route networks behind it into the tunnel.
	AllowRoutes []netip.Prefix
	// Pool are the networks Assign leases from: no client's route may
	// overlap them.
	Pool []netip.Prefix
	// Nets, if set, lists the server's own addresses and connected
	// networks (see router.Nets), which no proposed address and no granted
	// route may overlap. It is asked after Admit, which may have ended an
	// older session of the same client and freed its addresses.
	Nets func() ([]router.Net, error)
	// Forwarding, if set, tells whether this machine forwards IPv4 and
	// IPv6 ("ipv4", "ipv6"), asked once the link is up; the answer
	// carries it, so that a client routing networks here can warn.
	Forwarding func() map[string]bool
	// OwnDevice, if set, reports whether the server's account owns the
	// device a client asks for by name when the policy names none (a
	// device the admin made for this account): then it is the policy's.
	OwnDevice func(name string) bool
	Open      Opener
	// Stripe, if set, is asked once the tunnel is up when the client
	// asked for several streams (t.Streams): it returns the session's
	// Join for the answer, which the client's other connections present
	// (nil: the tunnel runs over one).
	Stripe func(t Tunnel, link *Link) *framing.Join
	// Join, if set, takes a connection whose Hello joins a striped
	// session (h.Join) once the policy has checked the Hello, and hands
	// it to the session (see ServeStream), returning once the stream has
	// ended; handed false with an error is the session's refusal, which
	// Serve tells the client. Without Join, joins are refused.
	Join func(ctx context.Context, h *framing.Hello, conn io.ReadWriteCloser) (handed bool, err error)
	// Linger, if set, is called when the connection has ended, before
	// the link closes: a striped session waits there for its other
	// streams.
	Linger func()

	// Software names this build in the answer; DefaultSoftware when
	// empty.
	Software string

	Keepalive time.Duration
	DeadAfter time.Duration
	Logger    *slog.Logger
}

// newPump joins link and the framed transport, read through r, with the
// keepalive defaults for zero durations and the offloads agreed in the
// handshake enabled on the device.
func newPump(link *Link, conn io.ReadWriteCloser, tw *lockedWriter, r *framing.Reader, offload tun.Offload, mode tun.Mode, peer *framing.Hello,
	keepalive, deadAfter time.Duration, log *slog.Logger) (*pump, error) {
	stats := link.stats // the run's counters: the link outlives connections
	if link.vnet {
		if err := link.dev.SetOffload(offload); err != nil {
			return nil, err
		}
	}
	p := &pump{dev: link.dev, vnet: link.vnet, linkDead: link.dead, linkErr: link.Err, linkClosing: link.closing, conn: conn, r: r, tw: tw, log: log, stats: stats, offload: offload,
		dw: framing.NewWriterSize(tw, dataWriterSize), cw: framing.NewWriterSize(tw, 512), werr: make(chan error, 1),
		keepalive: orDefault(keepalive, DefaultKeepalive), deadAfter: orDefault(deadAfter, DefaultDeadAfter),
		done: make(chan struct{}), wbuf: make([][]byte, 1), start: time.Now(),
		tap: mode == tun.ModeTAP, bufs: newBufs(), wake: make(chan struct{}, 1), paced: peer.Acks, ackNow: make(chan struct{}, 1),
		stripe: link.cfg.Stripe}
	if p.stripe != nil {
		// (A reconnect may reach another version of the peer.)
		p.stripe.twice.Store(peer.Twice)
	}
	p.cur = p.bufs.getLarge()
	p.loss = newLossMeter(conn)
	p.q = newFQCodel(p.bufs.put)
	p.q.target = pumpQueueTarget
	p.detach = func() { link.detach(p) }
	if link.vnet {
		p.vnetBuf = make([]byte, tun.VnetHdrLen+framing.MaxPayload)
	}
	if offload != 0 {
		r.AllowOffload(framing.MaxOffloadPayload)
		p.dw.AllowOffload(framing.MaxOffloadPayload)
	}
	return p, nil
}

// upAttached brings link up to t with p attached first, so that nothing
// the device reads once the tunnel is configured is lost: it waits in p's
// frame buffer for the transport. On failure p is detached again.
func upAttached(link *Link, p *pump, t Tunnel, server netip.Addr) error {
	link.attach(p)
	if err := link.Up(t, server); err != nil {
		p.stop()
		return err
	}
	return nil
}

// offer is what this side's Hello says of offloads: what the device
// accepted, in tun mode, and the largest frame it then takes.
func offer(dev tun.Device, mode tun.Mode) ([]string, int) {
	if mode != tun.ModeTUN || dev.Offloads().Usable() == 0 {
		return nil, 0
	}
	return dev.Offloads().Names(), framing.MaxOffloadPayload
}

// agree is the offloads both sides enable: those both devices accepted,
// when the peer's Hello offers them and takes frames large enough.
func agree(own tun.Offload, mode tun.Mode, peer *framing.Hello) tun.Offload {
	if mode != tun.ModeTUN || peer.MaxFrame < framing.MaxOffloadPayload {
		return 0
	}
	return (own & tun.ParseOffloads(peer.Offloads)).Usable()
}

// serverAddr is the SSH server's address as the connection reached it, if
// known.
func (cfg *ClientConfig) serverAddr(ctx context.Context, log *slog.Logger) netip.Addr {
	if cfg.ServerAddr == nil {
		return netip.Addr{}
	}
	a, err := cfg.ServerAddr(ctx)
	if err != nil {
		log.Debug("the SSH server's address is unknown", "err", err)
	}
	return a
}

// RunClient runs the client side of one connection over conn until ctx ends
// (an orderly close, returning nil), the server closes, or something fails.
// It brings cfg.Link up to the tunnel the server decides and pumps packets
// between it and conn. It closes conn before returning, never the link.
func RunClient(ctx context.Context, conn io.ReadWriteCloser, cfg ClientConfig) error {
	_, err := runClient(ctx, conn, cfg)
	return err
}

// runClient is RunClient; up says whether the tunnel came up.
func runClient(ctx context.Context, conn io.ReadWriteCloser, cfg ClientConfig) (up bool, err error) {
	defer conn.Close()
	log := logger(cfg.Logger)
	mode := cfg.Mode
	if mode == "" {
		mode = tun.ModeTUN
	}
	r := framing.NewReader(conn)
	// Every write goes through tw, which the pump's writers share: a
	// refusal after the link came up cannot tear a data frame.
	tw := &lockedWriter{w: conn}
	w := framing.NewWriter(tw)
	hello := &framing.Hello{Role: "client", Software: software(cfg.Software), Mode: string(mode), MTU: cfg.MTU,
		Addrs: cfg.Addrs, PeerAddrs: cfg.PeerAddrs, WantDev: cfg.RemoteDev, Routes: cfg.RemoteRoutes, Resume: cfg.Resume, Acks: true, Twice: true,
		Join: cfg.Join}
	if cfg.Streams > 1 && cfg.Join == nil {
		hello.Streams = cfg.Streams
	}
	hello.Offloads, hello.MaxFrame = offer(cfg.Link.dev, mode)
	// The hello is written while the answer is read: the server writes its
	// preamble before it reads, so on an unbuffered transport (net.Pipe)
	// writing first would deadlock. When both fail, the read's error wins:
	// a server that went away is better explained by io.EOF (or the
	// transport's own error for it) than by a broken pipe.
	wrote := make(chan error, 1)
	go func() { wrote <- writeHello(w, hello) }()
	log.Debug("handshake: sending hello", "mode", mode, "mtu", cfg.MTU, "addrs", prefixes(cfg.Addrs), "peer_addrs", prefixes(cfg.PeerAddrs))

	type result struct {
		h   *framing.Hello
		err error
	}
	res := make(chan result, 1)
	go func() {
		var first *time.Timer
		if cfg.HandshakeTimeout > 0 {
			first = time.AfterFunc(cfg.HandshakeTimeout, func() { conn.Close() })
		}
		err := readPreamble(r)
		if first != nil && !first.Stop() {
			err = fmt.Errorf("tunnel: no answer from the server within %v", cfg.HandshakeTimeout)
		}
		if err != nil {
			res <- result{err: err}
			return
		}
		// The server is there; its answer must not take forever.
		timer := time.AfterFunc(answerTimeout, func() { conn.Close() })
		h, err := readHello(r)
		if !timer.Stop() {
			err = fmt.Errorf("tunnel: the server did not answer the handshake within %v", answerTimeout)
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
		return false, nil
	}
	if got.err != nil {
		conn.Close() // unblocks a hello the server will never read
		<-wrote
		var remote *RemoteError
		if cfg.Join != nil && errors.As(got.err, &remote) {
			return false, &JoinError{Err: got.err}
		}
		return false, got.err
	}
	var werr error
	select {
	case werr = <-wrote:
	case <-ctx.Done():
		conn.Close()
		<-wrote
		return false, nil
	}
	if werr != nil {
		return false, werr
	}
	h := got.h
	// From here on, the server has opened its device and waits for
	// packets: when the client gives up, it says why in an Error frame.
	log.Debug("handshake: server answered", "software", h.Software, "mode", h.Mode, "mtu", h.MTU,
		"addrs", prefixes(h.Addrs), "peer_addrs", prefixes(h.PeerAddrs), "dev", h.Dev)
	prop := policy.Proposal{Mode: mode, Addrs: cfg.Addrs, PeerAddrs: cfg.PeerAddrs}
	t, err := policy.Accept(h, prop, cfg.Nets)
	if err != nil {
		return false, refuse(w, localError{fmt.Errorf("tunnel: %w", err)})
	}
	if prop.Assigned(t) {
		log.Info("the server assigned the tunnel addresses", "local", prefixes(t.Addrs), "remote", prefixes(t.PeerAddrs))
	}
	server := cfg.serverAddr(ctx, log)
	offload := agree(cfg.Link.dev.Offloads(), mode, h)
	p, err := newPump(cfg.Link, conn, tw, r, offload, mode, h, cfg.Keepalive, cfg.DeadAfter, log)
	if err != nil {
		return false, refuse(w, localError{err})
	}
	t.Offload = offload
	if err := upAttached(cfg.Link, p, t, server); err != nil {
		return false, refuse(w, localError{err})
	}
	if cfg.Join != nil {
		log.Debug("stream joined", "session", cfg.Join.Session[:8], "offloads", offload)
		return true, p.run(ctx)
	}
	log.Info("tunnel up", "dev", cfg.Link.dev.Name(), "local", prefixes(t.Addrs), "remote", prefixes(t.PeerAddrs), "mtu", t.MTU,
		"server", cfg.Server, "remote_dev", h.Dev, "offloads", offload)
	if msg := noForwarding(cfg.Routed, t.Addrs, h.Forward); msg != "" {
		log.Warn(msg)
	}
	if cfg.Streams > 1 && cfg.Joined != nil {
		j := h.Join
		if !j.Valid() {
			j = nil
		}
		cfg.Joined(j)
	}
	return true, p.run(ctx)
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
		return fmt.Errorf("tunnel: writing to the client: %w", err)
	}
	timer := time.AfterFunc(handshakeTimeout, func() { conn.Close() })
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err := readPreamble(r)
	notClient := err != nil // what came is no sshvpn client's
	var h *framing.Hello
	if err == nil {
		h, err = readHello(r)
	}
	if !stop() {
		timer.Stop()
		return nil // asked to stop during the handshake
	}
	if !timer.Stop() {
		return fmt.Errorf("tunnel: no handshake from the client within %v", handshakeTimeout)
	}
	if notClient {
		// A person's "ssh host id" or a shell against a key that runs
		// only sshvpn: one line they can read, not a frame.
		io.WriteString(conn, "\r\n"+NotAClient+"\r\n")
		return err
	}
	if err != nil {
		return refuse(w, err)
	}
	log.Debug("handshake: client hello", "software", h.Software, "mode", h.Mode, "mtu", h.MTU,
		"addrs", prefixes(h.Addrs), "peer_addrs", prefixes(h.PeerAddrs))
	if h.Join != nil {
		// One more stream of a striped session: the same policy
		// checks its Hello, and the session takes it.
		if err := policy.Check(h, cfg.policy()); err != nil {
			return refuse(w, err)
		}
		if cfg.Join == nil {
			return refuse(w, errors.New("this server does not stripe tunnels: connect with one stream"))
		}
		handed, err := cfg.Join(ctx, h, conn)
		if !handed && err != nil {
			return refuse(w, err)
		}
		return err
	}
	t, err := grant(cfg, h)
	if err != nil {
		return refuse(w, err)
	}
	if h.MaxFrame >= framing.MaxOffloadPayload {
		t.Offload = tun.ParseOffloads(h.Offloads).Usable()
	}
	link, err := cfg.Open(t)
	if err != nil {
		return refuse(w, err)
	}
	defer link.Close()
	if cfg.Linger != nil {
		defer cfg.Linger() // first: a striped session's other streams end before the link closes
	}
	p, t, err := answer(conn, r, w, h, link, t, cfg, log, func(a *framing.Hello, t Tunnel) {
		if cfg.Forwarding != nil && t.Mode == tun.ModeTUN {
			a.Forward = cfg.Forwarding()
		}
		if t.Streams > 1 && cfg.Stripe != nil {
			a.Join = cfg.Stripe(t, link)
		}
	})
	if err != nil {
		return err
	}
	log.Info("tunnel up", "dev", link.dev.Name(), "local", prefixes(t.Addrs), "remote", prefixes(t.PeerAddrs), "mtu", t.MTU, "offloads", t.Offload)
	return p.run(ctx)
}

// NotAClient is what the server says to a peer that is no sshvpn client.
const NotAClient = "sshvpn --remote: this login runs sshvpn only (a VPN over SSH); it takes no commands and no shell. Connect with: sshvpn USER@HOST"

// serverHello is the server's answer for tunnel t on link.
func serverHello(cfg ServerConfig, t Tunnel, link *Link) *framing.Hello {
	h := &framing.Hello{Role: "server", Software: software(cfg.Software), Mode: string(t.Mode), MTU: t.MTU,
		Addrs: t.Addrs, PeerAddrs: t.PeerAddrs, Dev: link.dev.Name(), Acks: true, Twice: true}
	h.Offloads, h.MaxFrame = offer(link.dev, t.Mode)
	return h
}

// ServeStream runs one more stream of a striped session over conn: h is
// its Hello, which joined the session whose tunnel is t (the stream's
// first process read it, and wrote the preamble), and link the stream's
// own, over another queue of the session's device. It answers, and pumps
// until the stream ends; it closes conn, never the link.
func ServeStream(ctx context.Context, conn io.ReadWriteCloser, h *framing.Hello, link *Link, t Tunnel, cfg ServerConfig) error {
	defer conn.Close()
	log := logger(cfg.Logger)
	p, t, err := answer(conn, framing.NewReader(conn), framing.NewWriter(conn), h, link, t, cfg, log, nil)
	if err != nil {
		return err
	}
	log.Debug("stream joined", "dev", link.dev.Name(), "offloads", t.Offload)
	return p.run(ctx)
}

// answer makes the pump of a server's connection for tunnel t on link,
// brings the link up with the pump attached (only attaches it when the
// link is up already: a striped session's first link, taken over by a
// later stream), and answers the client with the server's Hello, which
// more, if set, completes. The server writes its answer straight to conn
// while it holds tw's lock, so that no data frame the device reads once
// the link is up goes before it. On failure the client is told why.
func answer(conn io.ReadWriteCloser, r *framing.Reader, w *framing.Writer, h *framing.Hello, link *Link, t Tunnel, cfg ServerConfig,
	log *slog.Logger, more func(*framing.Hello, Tunnel)) (*pump, Tunnel, error) {
	offload := agree(link.dev.Offloads(), t.Mode, h)
	tw := &lockedWriter{w: conn}
	p, err := newPump(link, conn, tw, r, offload, t.Mode, h, cfg.Keepalive, cfg.DeadAfter, log)
	if err != nil {
		return nil, t, refuse(w, err)
	}
	t.Offload = offload
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if link.Ups() > 0 {
		link.attach(p)
	} else if err := upAttached(link, p, t, netip.Addr{}); err != nil {
		return nil, t, refuse(w, err)
	}
	a := serverHello(cfg, t, link)
	if more != nil {
		more(a, t)
	}
	err = w.WriteHello(a)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		p.conn.Close()
		p.stop()
		return nil, t, fmt.Errorf("tunnel: writing to the client: %w", err)
	}
	return p, t, nil
}

// grant decides the tunnel for the client's Hello h: the policy's check,
// then Admit (which may end the same client's older session and free what
// it held), then the grant with the server's networks as they are now,
// then Assign for a lease.
func grant(cfg ServerConfig, h *framing.Hello) (Tunnel, error) {
	pol := cfg.policy()
	if pol.Dev == "" && h.WantDev != "" && cfg.OwnDevice != nil && cfg.OwnDevice(h.WantDev) {
		pol.Dev = h.WantDev
	}
	if err := policy.Check(h, pol); err != nil {
		return Tunnel{}, err
	}
	if cfg.Admit != nil {
		if err := cfg.Admit(Tunnel{Resume: h.Resume}); err != nil {
			return Tunnel{}, err
		}
	}
	w := policy.Where{Client: cfg.ClientAddr}
	if cfg.Nets != nil {
		var err error
		if w.Nets, err = cfg.Nets(); err != nil {
			return Tunnel{}, err
		}
	}
	t, err := policy.Grant(h, pol, w)
	if err != nil {
		return Tunnel{}, err
	}
	if cfg.Assign != nil {
		if t.Addrs, t.PeerAddrs, err = cfg.Assign(h.Addrs); err != nil {
			return Tunnel{}, err
		}
	}
	return t, nil
}

// policy is the server's policy in cfg.
func (cfg *ServerConfig) policy() policy.Server {
	return policy.Server{Mode: cfg.Mode, MTU: cfg.MTU, Addrs: cfg.Addrs, PeerAddrs: cfg.PeerAddrs, Dev: cfg.Dev,
		Pool: cfg.Pool, AllowRoutes: cfg.AllowRoutes}
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

// localError is a failure of this side's own setup (its router, its hook)
// or its refusal of the server's answer: a reconnect cannot help.
type localError struct{ error }

func (e localError) Unwrap() error { return e.error }

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
		return fmt.Errorf("tunnel: writing the handshake: %w", err)
	}
	return nil
}

// Routed is what a client routes into the tunnel beyond the server.
type Routed struct {
	Routes       []netip.Prefix // --route
	DefaultRoute bool           // --default-route, for each family of the tunnel
}

// noForwarding is a warning when the client routes networks into the
// tunnel (--route, or --default-route for the families of its addresses
// addrs) that the server will not forward: the packets would vanish there.
// forward is the server's report; nil is unknown (an older server).
func noForwarding(cfg Routed, addrs []netip.Prefix, forward map[string]bool) string {
	if forward == nil {
		return ""
	}
	var fams []string
	for _, fam := range []struct {
		name string
		v4   bool
	}{{"ipv4", true}, {"ipv6", false}} {
		ofFam := func(p netip.Prefix) bool { return p.Addr().Is4() == fam.v4 }
		routed := slices.ContainsFunc(cfg.Routes, ofFam) || (cfg.DefaultRoute && slices.ContainsFunc(addrs, ofFam))
		if on, known := forward[fam.name]; routed && known && !on {
			fams = append(fams, fam.name)
		}
	}
	if len(fams) == 0 {
		return ""
	}
	what := "--route"
	if cfg.DefaultRoute {
		what = "--default-route"
	}
	return fmt.Sprintf("the server does not forward %s packets, so what %s sends into the tunnel beyond the server itself goes nowhere: "+
		"the server's admin can add --nat to its sshvpn --remote (or enable forwarding: sysctl net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=1)",
		strings.Join(fams, " and "), what)
}
