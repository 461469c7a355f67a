package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/registry"
)

// monitor follows one run of a tunnel, on either side: its state and
// counters go to its registry record every few seconds (sshvpn status),
// SIGUSR1 logs the counters, and with -v they are logged every
// counterEvery.
type monitor struct {
	s     *session // may be nil: no registry
	stats *sshvpn.Stats
	log   *slog.Logger
	every time.Duration // log the counters this often; 0: only on SIGUSR1

	mu sync.Mutex
	st registry.Status
	// onState, if set, is told of every change of state, with a line for
	// a person (systemd's STATUS).
	onState func(state, line string)
}

// How often the record is refreshed, and how often -v logs the counters.
const (
	recordEvery  = 2 * time.Second
	counterEvery = 10 * time.Second
)

func newMonitor(s *session, stats *sshvpn.Stats, log *slog.Logger, verbose bool) *monitor {
	m := &monitor{s: s, stats: stats, log: log}
	if verbose {
		m.every = counterEvery
	}
	m.st = registry.Status{State: registry.StateConnecting, Since: time.Now().UTC()}
	return m
}

// up is told of every tunnel the link is brought up to.
func (m *monitor) up(t sshvpn.Tunnel, line string) {
	m.mu.Lock()
	if m.st.State != registry.StateConnecting {
		m.st.Reconnects++ // up before: this is a reconnect
	}
	m.st.State, m.st.Attempt, m.st.Reason = registry.StateUp, 0, ""
	m.st.Since, m.st.MTU, m.st.Offloads = time.Now().UTC(), t.MTU, t.Offload.String()
	f := m.onState
	m.mu.Unlock()
	m.write()
	if f != nil {
		f(registry.StateUp, line)
	}
}

// retrying is told of every wait before a reconnect.
func (m *monitor) retrying(attempt int, wait time.Duration, reason string) {
	m.mu.Lock()
	if m.st.State != registry.StateReconnecting {
		m.st.Since = time.Now().UTC() // the outage began: not reset by each attempt
	}
	m.st.State, m.st.Attempt, m.st.Reason = registry.StateReconnecting, attempt, reason
	f := m.onState
	m.mu.Unlock()
	m.write()
	if f != nil {
		f(registry.StateReconnecting, "reconnecting (attempt "+strconv.Itoa(attempt)+" in "+wait.Round(time.Second).String()+"): "+reason)
	}
}

// status returns the state with the counters as they are now.
func (m *monitor) status() registry.Status {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	s := m.stats
	st.RTT = time.Duration(s.RTT.Load())
	st.PacketsOut, st.BytesOut = s.PacketsOut.Load(), s.BytesOut.Load()
	st.PacketsIn, st.BytesIn = s.PacketsIn.Load(), s.BytesIn.Load()
	st.Drops = nil
	for _, d := range []struct {
		name string
		n    uint64
	}{{"from_peer", s.Dropped.Load()}, {"to_peer", s.DroppedOut.Load()}, {"over_rate", s.DroppedRate.Load()},
		{"tunnel_down", s.DroppedDetached.Load()}, {"malformed", s.Malformed.Load()}} {
		if d.n > 0 {
			if st.Drops == nil {
				st.Drops = map[string]uint64{}
			}
			st.Drops[d.name] = d.n
		}
	}
	st.Updated = time.Now().UTC()
	return st
}

// write puts the status in the registry record.
func (m *monitor) write() {
	if m.s == nil || m.s.entry == nil {
		return
	}
	st := m.status()
	if err := m.s.entry.Update(func(r *registry.Record) { r.Status = &st }); err != nil {
		m.log.Debug("recording the status", "err", err)
	}
}

// logCounters logs the counters in one line.
func (m *monitor) logCounters(msg string) {
	st := m.status()
	args := []any{"state", st.State, "packets_out", st.PacketsOut, "bytes_out", st.BytesOut,
		"packets_in", st.PacketsIn, "bytes_in", st.BytesIn, "rtt", st.RTT.Round(time.Microsecond), "reconnects", st.Reconnects}
	for k, v := range st.Drops {
		args = append(args, "dropped_"+k, v)
	}
	m.log.Info(msg, args...)
}

// run refreshes the record, logs the counters when asked to, and returns
// when ctx ends.
func (m *monitor) run(ctx context.Context) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	rec := time.NewTicker(recordEvery)
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
		case <-usr1:
			m.logCounters("counters (SIGUSR1)")
		case <-ctx.Done():
			return
		}
	}
}

// start runs m until the returned stop is called.
func (m *monitor) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx) }()
	return func() { cancel(); <-done }
}
