package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tunnel"
)

// A striped tunnel (--streams N) runs over N connections, each with a
// link of its own over one queue of the multi-queue device. Each flow
// rides one connection and keeps its order: the links' stripe places each
// new flow on the connection that carries the fewest, and the kernel
// keeps it on that queue (see tunnel.Stripe); while a connection is down,
// its link takes its queue out of the set, and its flows move to the
// others.
// The first connection begins the session and learns its Join from the
// server's answer; the others, and any connection dialled again later,
// join it. When the server no longer knows the session, the first begins
// it anew and the others join the new one. Each connection has its own
// reconnect loop; without --reconnect a connection that ends is dropped,
// with a warning, and the tunnel goes on until the last one ends.

// striped is a client run over several connections.
type striped struct {
	n      int
	d      transport
	cfg    tunnel.ClientConfig // the first connection's; cfg.Link is queue 0's
	rc     Reconnect
	log    *slog.Logger
	stats  *tunnel.Stats
	stripe *tunnel.Stripe // places the flows on the streams

	mu      sync.Mutex
	current *framing.Join // the session's Join, once known
	changed chan struct{} // closed (and replaced) when join changes
	started bool          // the other connections run
	warned  bool
	links   []*tunnel.Link // by stream: its link (the first's is cfg.Link; nil: none)
	ended   []bool         // by stream: it ended for good
	wg      sync.WaitGroup
	done    chan streamEnd
	running int
}

type streamEnd struct {
	i   int
	err error
}

func newStriped(n int, d transport, cfg tunnel.ClientConfig, rc Reconnect, stats *tunnel.Stats, stripe *tunnel.Stripe, log *slog.Logger) *striped {
	st := &striped{n: n, d: d, cfg: cfg, rc: rc, stats: stats, stripe: stripe, log: log, changed: make(chan struct{}), done: make(chan streamEnd, n),
		ended: make([]bool, n), links: make([]*tunnel.Link, n)}
	st.links[0] = cfg.Link
	return st
}

// run runs the connections until the last one ends (or ctx does), and
// returns how the last one ended.
func (st *striped) run(ctx context.Context) error {
	cfg := st.cfg
	cfg.Streams = st.n
	cfg.Joined = func(j *framing.Join) { st.joined(ctx, j) }
	st.mu.Lock()
	st.start(ctx, 0, cfg)
	st.mu.Unlock()
	var last error
	for {
		e := <-st.done
		st.mu.Lock()
		st.ended[e.i] = true
		st.running--
		left := st.running
		st.mu.Unlock()
		last = e.err
		if left == 0 {
			break
		}
		if ctx.Err() == nil {
			reason := "the server closed it"
			if e.err != nil {
				reason = e.err.Error()
			}
			st.log.Warn(fmt.Sprintf("stream %d ended; the tunnel goes on with %d", e.i+1, left), "reason", reason)
		}
	}
	st.wg.Wait()
	for _, l := range st.links[1:] {
		if l != nil {
			l.Close()
		}
	}
	return last
}

// start runs connection i's loop. st.mu is held.
func (st *striped) start(ctx context.Context, i int, cfg tunnel.ClientConfig) {
	st.running++
	st.wg.Add(1)
	log := st.log.With("stream", i+1)
	cfg.Logger = log
	go func() {
		defer st.wg.Done()
		err := connectEach(ctx, st.d, cfg, st.adjust(i), st.rc, log)
		st.done <- streamEnd{i, err}
	}()
}

// joined hears the server's answer to a connection that began the
// session: its Join, or nil when the server runs the tunnel over one
// connection. The first time, it starts the other connections.
func (st *striped) joined(ctx context.Context, j *framing.Join) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if j == nil {
		if !st.warned {
			st.warned = true
			st.log.Warn(fmt.Sprintf("the server does not stripe the tunnel (an older sshvpn, or a device that is not multi-queue): one stream instead of %d", st.n))
		}
		return
	}
	st.current = j
	close(st.changed)
	st.changed = make(chan struct{})
	if st.started {
		return
	}
	st.started = true
	dev := st.cfg.Link.Device()
	for i := 1; i < st.n; i++ {
		q, err := tun.OpenQueue(dev)
		if err != nil {
			st.log.Warn(fmt.Sprintf("stream %d: no queue on the device for it", i+1), "err", err.Error())
			continue
		}
		// Each stream counts its own; the status sums them.
		link := tunnel.NewLink(q, tunnel.LinkConfig{Queue: true, Logger: st.log, Stats: new(tunnel.Stats), Stripe: st.stripe})
		st.links[i] = link
		cfg := st.cfg
		cfg.Link = link
		st.start(ctx, i, cfg)
	}
}

// adjust makes connection i's configuration for its next attempt: a
// connection joins the session once it is known; the first begins it
// when it is not (or no more: the server refused to join it).
func (st *striped) adjust(i int) adjuster {
	var used *framing.Join
	return func(ctx context.Context, c *tunnel.ClientConfig, last error) error {
		st.mu.Lock()
		defer st.mu.Unlock()
		var refused *tunnel.JoinError
		if errors.As(last, &refused) && st.current != nil && used == st.current {
			st.log.Info("the server no longer knows the striped session: it begins anew", "reason", refused.Err.Error())
			st.current = nil
		}
		for i > 0 && st.current == nil {
			changed := st.changed
			st.mu.Unlock()
			select {
			case <-changed:
			case <-ctx.Done():
				st.mu.Lock()
				return ctx.Err()
			}
			st.mu.Lock()
		}
		used = st.current
		c.Join = st.current
		if c.Join != nil && st.cfg.Link != nil {
			if t := st.cfg.Link.Tunnel(); len(t.Addrs) > 0 {
				c.Addrs, c.PeerAddrs = t.Addrs, t.PeerAddrs
			}
		}
		return nil
	}
}

// streams is the state and counters of each connection, for the status.
func (st *striped) streams() []record.Stream {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]record.Stream, 0, st.n)
	for i, l := range st.links {
		if l == nil {
			if i > 0 && st.started {
				continue // no queue for it
			}
			out = append(out, record.Stream{State: registry.StateConnecting, Stats: new(tunnel.Stats)})
			continue
		}
		state := registry.StateConnecting
		switch {
		case l.Attached():
			state = registry.StateUp
		case st.ended[i]:
			state = registry.StateEnded
		case l.Ups() > 0:
			state = registry.StateReconnecting
		}
		out = append(out, record.Stream{State: state, Stats: l.Stats()})
	}
	return out
}
