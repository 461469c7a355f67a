package record

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tunnel"
)

// Monitor follows one run of a tunnel, on either side: its state and
// counters go to its registry record every few seconds (sshvpn status), a
// signal on Counters (SIGUSR1) logs the counters, and with -v they are
// logged every CounterEvery.
type Monitor struct {
	s     *Session // may be nil: no registry
	stats *tunnel.Stats
	log   *slog.Logger
	every time.Duration // log the counters this often; 0: only when asked

	// Counters, if set, asks for the counters in the log (SIGUSR1).
	Counters <-chan os.Signal
	// OnState, if set, is told of every change of state, with a line for
	// a person (systemd's STATUS).
	OnState func(state, line string)
	// OnRefresh, if set, is given the status each time the record is
	// refreshed (every RecordEvery, and by Refresh): the server's
	// accounting.
	OnRefresh func(registry.Status)

	mu      sync.Mutex
	st      registry.Status
	streams func() []Stream
}

// Stream is one connection of a striped tunnel, for its status.
type Stream struct {
	State string // registry.StateUp, ...
	Stats *tunnel.Stats
}

// SetStreams makes the status that of a striped tunnel: f lists its
// connections, whose counters the status sums.
func (m *Monitor) SetStreams(f func() []Stream) {
	m.mu.Lock()
	m.streams = f
	m.mu.Unlock()
}

// How often the record is refreshed, and how often -v logs the counters.
const (
	RecordEvery  = 2 * time.Second
	CounterEvery = 10 * time.Second
)

// NewMonitor follows the run whose record is s (nil: none) and whose
// counters are stats; verbose logs the counters every CounterEvery.
func NewMonitor(s *Session, stats *tunnel.Stats, log *slog.Logger, verbose bool) *Monitor {
	m := &Monitor{s: s, stats: stats, log: log}
	if verbose {
		m.every = CounterEvery
	}
	m.st = registry.Status{State: registry.StateConnecting, Since: time.Now().UTC()}
	return m
}

// Up is told of every tunnel the link is brought up to.
func (m *Monitor) Up(t policy.Tunnel, line string) {
	m.mu.Lock()
	if m.st.State != registry.StateConnecting {
		m.st.Reconnects++ // up before: this is a reconnect
	}
	m.st.State, m.st.Attempt, m.st.Reason = registry.StateUp, 0, ""
	m.st.Since, m.st.MTU, m.st.Offloads = time.Now().UTC(), t.MTU, t.Offload.String()
	f := m.OnState
	m.mu.Unlock()
	m.write()
	if f != nil {
		f(registry.StateUp, line)
	}
}

// Retrying is told of every wait before a reconnect.
func (m *Monitor) Retrying(attempt int, wait time.Duration, reason string) {
	m.mu.Lock()
	if m.st.State != registry.StateReconnecting {
		m.st.Since = time.Now().UTC() // the outage began: not reset by each attempt
	}
	m.st.State, m.st.Attempt, m.st.Reason = registry.StateReconnecting, attempt, reason
	f := m.OnState
	m.mu.Unlock()
	m.write()
	if f != nil {
		f(registry.StateReconnecting, "reconnecting (attempt "+strconv.Itoa(attempt)+" in "+wait.Round(time.Second).String()+"): "+reason)
	}
}

// MarkedECN is the key, among the drops of a Status, of the packets the
// queue CE-marked rather than dropped (ECN): they were delivered.
const MarkedECN = "marked_ecn"

// status returns the state with the counters as they are now.
func (m *Monitor) status() registry.Status {
	m.mu.Lock()
	st := m.st
	streams := m.streams
	m.mu.Unlock()
	all := []*tunnel.Stats{m.stats}
	if streams != nil {
		all = all[:0]
		for _, c := range streams() {
			all = append(all, c.Stats)
			rtt := time.Duration(c.Stats.RTT.Load())
			if c.State != registry.StateUp {
				rtt = 0
			}
			st.Streams = append(st.Streams, registry.StreamStatus{State: c.State, RTT: rtt,
				BytesOut: c.Stats.BytesOut.Load(), BytesIn: c.Stats.BytesIn.Load(), HandedOver: c.Stats.HandedOver.Load()})
		}
	}
	st.RTT = time.Duration(m.stats.RTT.Load())
	if streams != nil {
		st.RTT = 0 // a striped tunnel's: the quickest stream's that is up
		for _, c := range st.Streams {
			if c.RTT > 0 && (st.RTT == 0 || c.RTT < st.RTT) {
				st.RTT = c.RTT
			}
		}
	}
	st.Drops = nil
	for _, s := range all {
		st.PacketsOut += s.PacketsOut.Load()
		st.BytesOut += s.BytesOut.Load()
		st.PacketsIn += s.PacketsIn.Load()
		st.BytesIn += s.BytesIn.Load()
		for _, d := range []struct {
			name string
			n    uint64
		}{{"from_peer", s.Dropped.Load()}, {"to_peer", s.DroppedOut.Load()}, {"over_rate", s.DroppedRate.Load()},
			{"tunnel_down", s.DroppedDetached.Load()}, {"malformed", s.Malformed.Load()},
			{"queue_codel", s.QueueDropped.Load()}, {"queue_full", s.QueueOverflow.Load()}, {MarkedECN, s.QueueMarked.Load()},
			{"second_copies", s.Twice.Load()}} {
			if d.n > 0 {
				if st.Drops == nil {
					st.Drops = map[string]uint64{}
				}
				st.Drops[d.name] += d.n
			}
		}
	}
	st.Updated = time.Now().UTC()
	return st
}

// write puts the status in the registry record.
func (m *Monitor) write() {
	st := m.status()
	m.s.Update(func(r *registry.Record) { r.Status = &st })
	if m.OnRefresh != nil {
		m.OnRefresh(st)
	}
}

// Refresh refreshes the record now: a session that ends counts its last
// bytes.
func (m *Monitor) Refresh() { m.write() }

// logCounters logs the counters in one line.
func (m *Monitor) logCounters(msg string) {
	st := m.status()
	args := []any{"state", st.State, "packets_out", st.PacketsOut, "bytes_out", st.BytesOut,
		"packets_in", st.PacketsIn, "bytes_in", st.BytesIn, "rtt", st.RTT.Round(time.Microsecond), "reconnects", st.Reconnects}
	for k, v := range st.Drops {
		if k != MarkedECN {
			k = "dropped_" + k
		}
		args = append(args, k, v)
	}
	m.log.Info(msg, args...)
}

// run refreshes the record, logs the counters when asked to, and returns
// when ctx ends.
func (m *Monitor) run(ctx context.Context) {
	rec := time.NewTicker(RecordEvery)
	defer rec.Stop()
	var every <-chan time.Time
	if m.every > 0 {
		t := time.NewTicker(m.every)
		defer t.Stop()
		every = t.C
	}
	for {
		select {
		case <-rec.C:
			m.write()
		case <-every:
			m.logCounters("counters")
		case <-m.Counters:
			m.logCounters("counters (SIGUSR1)")
		case <-ctx.Done():
			return
		}
	}
}

// Start runs m until the returned stop is called.
func (m *Monitor) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx) }()
	return func() { cancel(); <-done }
}
