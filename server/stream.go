package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tunnel"
	"golang.org/x/sys/unix"
)

// A striped session (--streams) stays daemon-free. The client's first
// connection makes the session as any other; its Hello asks for N
// streams, and the answer gives the client a Join: the session's id and a
// secret, both random. Each further connection is an sshd session of its
// own, running the same forced command; its Hello presents the Join. Its
// process (the joiner) checks the Hello under its own policy, then hands
// its stdin and stdout to the session's first process (the owner) over a
// Unix socket in the registry's directory, with its identity. The owner
// checks that the socket's peer is its own account, that the identity is
// the session's (the same key) and the secret the session's, and serves
// the stream on another queue of the session's device, behind the same
// guard: one anti-spoofing filter, one rate limit for the sum, one
// registry record, one host stack. The joiner waits until the owner is
// done with the stream. The owner is the first stream's process; it lives
// until the session's last stream has ended.

// joinRequest is what a joiner tells the owner, with its stdin and stdout
// as the message's descriptors.
type joinRequest struct {
	Hello *framing.Hello `json:"hello"`
	ID    string         `json:"id"`   // the joiner's Identity.ID
	Conn  string         `json:"conn"` // its SSH_CONNECTION
}

// joinReply is the owner's answer: empty, or why it refuses.
type joinReply struct {
	Error string `json:"error,omitempty"`
}

// joinTimeout bounds each step of a handoff.
const joinTimeout = 10 * time.Second

// maxJoinMsg bounds a join request.
const maxJoinMsg = 64 << 10

// socketPath is where a session's owner listens for its other streams.
func socketPath(dir, session string) string {
	return filepath.Join(dir, "stream-"+session+".sock")
}

// stripes is the owner's side of a striped session.
type stripes struct {
	joined // what it takes from the session
	join   framing.Join
	t      tunnel.Tunnel
	ctx    context.Context
	sc     tunnel.ServerConfig
	ln     *net.UnixListener
	path   string

	mu      sync.Mutex
	free    []*tunnel.Link // links no stream uses now
	opened  []*tunnel.Link // the queues opened for joined streams
	live    int            // joined streams running
	first   bool           // the first connection's stream runs
	closed  bool
	changed chan struct{} // a stream ended
	wg      sync.WaitGroup
}

// joined is what a striped session's streams share with its first: the
// session's identity (whose key a stream must have), its device (itself,
// for more queues, and as the session guards it), its counters and log.
type joined struct {
	id      string
	dev     tun.Device
	guarded tun.Device
	stripe  *tunnel.Stripe // the links' of a multi-queue device: pings and DNS go twice
	stats   *tunnel.Stats
	log     *slog.Logger
}

// stripe makes the session of tunnel t striped: it listens, in the
// registry's directory dir, for the client's other streams, and returns
// their Join. ctx and sc are the session's.
func stripe(ctx context.Context, sc tunnel.ServerConfig, t tunnel.Tunnel, dir string, j0 joined) (*stripes, *framing.Join) {
	j := framing.Join{Session: randomHex(framing.SessionLen / 2), Secret: randomHex(framing.SecretLen / 2)}
	path := socketPath(dir, j.Session)
	old := unix.Umask(0o077)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		j0.log.Warn("the client asked for streams; one stream only", "err", err.Error())
		return nil, nil
	}
	ln.SetUnlinkOnClose(true)
	st := &stripes{joined: j0, join: j, t: t, ctx: ctx, sc: sc, ln: ln, path: path, first: true, changed: make(chan struct{}, 1)}
	st.wg.Add(1)
	go st.accept()
	j0.log.Info("striped session", "streams", t.Streams, "session", j.Session[:8], tunnel.AdminOnly)
	return st, &j
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// accept takes the joiners' connections until the listener closes.
func (st *stripes) accept() {
	defer st.wg.Done()
	for {
		c, err := st.ln.AcceptUnix()
		if err != nil {
			return
		}
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			defer c.Close()
			st.take(c)
		}()
	}
}

// take checks one joiner's request and, if it holds, serves its stream
// until it ends.
func (st *stripes) take(c *net.UnixConn) {
	req, fds, err := readJoin(c)
	if err != nil {
		st.log.Warn("stream refused", "reason", err.Error(), tunnel.AdminOnly)
		closeFds(fds)
		return
	}
	link, err := st.admit(req)
	if err != nil {
		st.log.Warn("stream refused", "reason", err.Error(), tunnel.AdminOnly)
		closeFds(fds)
		writeReply(c, joinReply{Error: err.Error()})
		return
	}
	defer st.release(link)
	conn, err := spawn.Files(fds[0], fds[1], req.Conn)
	if err != nil {
		closeFds(fds)
		writeReply(c, joinReply{Error: err.Error()})
		return
	}
	if err := writeReply(c, joinReply{}); err != nil {
		conn.Close()
		return
	}
	// The joiner waits for c to close; it closes too when the joiner is
	// gone (its sshd session ended), which ends the stream.
	go func() {
		io.Copy(io.Discard, c)
		conn.Close()
	}()
	st.log.Info("stream joined", "client", req.Conn, tunnel.AdminOnly)
	err = tunnel.ServeStream(st.ctx, conn, req.Hello, link, st.t, st.sc)
	st.log.Info("stream ended", "client", req.Conn, "err", errString(err), tunnel.AdminOnly)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// admit checks a joiner's request and gives its stream a link: one whose
// stream ended, or one over a new queue of the device.
func (st *stripes) admit(req joinRequest) (*tunnel.Link, error) {
	j := req.Hello.Join
	if j == nil || subtle.ConstantTimeCompare([]byte(j.Session), []byte(st.join.Session)) != 1 ||
		subtle.ConstantTimeCompare([]byte(j.Secret), []byte(st.join.Secret)) != 1 {
		return nil, errors.New("a stream with a wrong secret for this striped session")
	}
	if req.ID != st.id {
		return nil, fmt.Errorf("a stream from another key (%s) than the session's", req.ID)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	n := st.live
	if st.first {
		n++
	}
	switch {
	case st.closed:
		return nil, errors.New("the striped session has ended: connect anew")
	case n >= st.t.Streams:
		return nil, fmt.Errorf("the striped session has all its %d streams", st.t.Streams)
	}
	var link *tunnel.Link
	if k := len(st.free); k > 0 {
		link, st.free = st.free[k-1], st.free[:k-1]
	} else {
		q, err := tun.OpenQueue(st.dev)
		if err != nil {
			return nil, err
		}
		// Each stream counts its own bytes (the guard's drops go to the
		// session's counters); the status sums them.
		link = tunnel.NewLink(tunnel.GuardQueue(st.guarded, q), tunnel.LinkConfig{Queue: true, Logger: st.log, Stats: new(tunnel.Stats), Stripe: st.stripe})
		st.opened = append(st.opened, link)
	}
	st.live++
	return link, nil
}

// release takes back a stream's link.
func (st *stripes) release(link *tunnel.Link) {
	st.mu.Lock()
	st.free = append(st.free, link)
	st.live--
	st.mu.Unlock()
	select {
	case st.changed <- struct{}{}:
	default:
	}
}

// linger runs once the first connection's stream has ended: its link
// serves a joiner from now on (the client's first stream, redialled),
// and the session goes on until no stream is left. Then it stops taking
// streams and closes their queues; the first link is the session's to
// close.
func (st *stripes) linger(first *tunnel.Link) {
	st.mu.Lock()
	st.first = false
	st.free = append(st.free, first)
	for st.live > 0 {
		st.mu.Unlock()
		<-st.changed
		st.mu.Lock()
	}
	st.closed = true
	st.mu.Unlock()
	st.ln.Close()
	st.wg.Wait()
	for _, l := range st.opened {
		l.Close()
	}
}

// streams is the state and counters of each of the session's streams,
// the first one's link first, for the status: up while a connection is
// attached to its link.
func (st *stripes) streams(first *tunnel.Link) []record.Stream {
	st.mu.Lock()
	links := append([]*tunnel.Link{first}, st.opened...)
	st.mu.Unlock()
	out := make([]record.Stream, len(links))
	for i, l := range links {
		out[i] = record.Stream{State: registry.StateEnded, Stats: l.Stats()}
		if l.Attached() {
			out[i].State = registry.StateUp
		}
	}
	return out
}

// readJoin reads a joiner's request and its two descriptors.
func readJoin(c *net.UnixConn) (joinRequest, []int, error) {
	var req joinRequest
	if err := checkPeer(c); err != nil {
		return req, nil, err
	}
	c.SetReadDeadline(time.Now().Add(joinTimeout))
	buf := make([]byte, maxJoinMsg)
	oob := make([]byte, unix.CmsgSpace(2*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return req, nil, fmt.Errorf("reading a joiner's request: %w", err)
	}
	c.SetReadDeadline(time.Time{})
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if f, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, f...)
			}
		}
	}
	if len(fds) != 2 {
		return req, fds, fmt.Errorf("a joiner handed %d descriptors, not its stdin and stdout", len(fds))
	}
	if err := json.Unmarshal(buf[:n], &req); err != nil || req.Hello == nil {
		return req, fds, fmt.Errorf("a malformed join request")
	}
	return req, fds, nil
}

func writeReply(c *net.UnixConn, r joinReply) error {
	b, _ := json.Marshal(r)
	c.SetWriteDeadline(time.Now().Add(joinTimeout))
	_, err := c.Write(append(b, '\n'))
	return err
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// joinSession is a joiner's part: it hands conn (its stdin and stdout)
// to the owner of the session h joins, whose socket is in the registry's
// directory dir, with the joiner's identity id, and waits until the
// owner is done with it. handed is false when the owner refused, or
// cannot be reached.
func joinSession(ctx context.Context, h *framing.Hello, conn io.ReadWriteCloser, dir, id string, log *slog.Logger) (bool, error) {
	files, ok := conn.(interface{ Files() (in, out *os.File) })
	if !ok {
		return false, errors.New("this connection cannot join a striped session")
	}
	path := socketPath(dir, h.Join.Session)
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return false, errors.New("no such striped session on this server (it has ended): connect anew")
		}
		return false, fmt.Errorf("reaching the striped session: %w", err)
	}
	defer c.Close()
	in, out := files.Files()
	b, err := json.Marshal(joinRequest{Hello: h, ID: id, Conn: os.Getenv("SSH_CONNECTION")})
	if err != nil {
		return false, err
	}
	c.SetWriteDeadline(time.Now().Add(joinTimeout))
	if _, _, err := c.WriteMsgUnix(b, unix.UnixRights(int(in.Fd()), int(out.Fd())), nil); err != nil {
		return false, fmt.Errorf("handing the stream to its session: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(joinTimeout))
	var r joinReply
	if err := json.NewDecoder(io.LimitReader(c, maxJoinMsg)).Decode(&r); err != nil {
		return false, fmt.Errorf("the striped session did not answer: %w", err)
	}
	if r.Error != "" {
		return false, errors.New(r.Error)
	}
	log.Info("stream handed to its session", "session", h.Join.Session[:8], tunnel.AdminOnly)
	c.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // until the owner is done with the stream
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return true, nil
}
