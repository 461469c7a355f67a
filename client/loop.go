package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tunnel"
)

// Reconnect says whether and how the client dials again.
type Reconnect struct {
	// Enabled dials again, with exponential backoff and jitter, when a
	// connection ends (or the first one fails) for a passing reason.
	// Without it the client returns after one connection.
	Enabled bool
	// Tries caps the attempts in a row that fail; 0 means no limit.
	Tries int
	// Min and Max bound the wait between attempts (DefaultBackoffMin and
	// DefaultBackoffMax when zero); it doubles from Min after each
	// failure.
	Min, Max time.Duration
	// Hangup, when it delivers, drops the current connection and dials
	// again at once (SIGHUP), also while waiting between attempts.
	Hangup <-chan os.Signal
	// Retrying, if set, is told of every wait before a reconnect: the
	// count of failed attempts in a row, the wait, and why.
	Retrying func(attempt int, wait time.Duration, reason string)
}

// Default backoff bounds.
const (
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = time.Minute
)

// reconnectHandshakeTimeout bounds a reconnect's wait for the server's
// first bytes; StableAfter is how long a tunnel must have stayed up for the
// backoff to start over.
const (
	reconnectHandshakeTimeout = time.Minute
	StableAfter               = 30 * time.Second
)

// errHangup ends a connection that Reconnect.Hangup asked to drop.
var errHangup = errors.New("reconnecting at once (hangup)")

// Backoff is the wait before the next attempt after failures failed
// attempts in a row (at least one), before jitter: Min doubling up to Max.
func (rc Reconnect) Backoff(failures int) time.Duration {
	lo, hi := orDefault(rc.Min, DefaultBackoffMin), orDefault(rc.Max, DefaultBackoffMax)
	wait := lo << min(max(failures, 1)-1, 30)
	if wait <= 0 || wait > hi {
		wait = hi
	}
	return wait
}

// jitter spreads a wait over ±20%, so that many clients of one server do
// not all come back in step, and keeps it within max.
func jitter(wait, max time.Duration) time.Duration {
	wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
	if wait > max {
		wait = max
	}
	return wait
}

// failuresAfter is the count of failed attempts in a row after a
// connection that was up (up) for upFor: a tunnel that stayed up longer
// than StableAfter starts the backoff over.
func failuresAfter(failures int, up bool, upFor time.Duration) int {
	if up && upFor > StableAfter {
		failures = 0
	}
	return failures + 1
}

// connect runs the client's connections: it dials d, runs the tunnel over
// the connection with cfg and, with rc.Enabled, dials again whenever the
// connection ends for a reason that a new one may mend (see
// tunnel.Retryable), until ctx ends. The link, its device and routes stay
// as they are in between: what the device reads meanwhile is dropped (with
// --default-route, nothing leaks past the tunnel). It returns nil when ctx
// ends.
func connect(ctx context.Context, d transport, cfg tunnel.ClientConfig, rc Reconnect, log *slog.Logger) error {
	return connectEach(ctx, d, cfg, nil, rc, log)
}

// adjuster makes one attempt's configuration from the run's, knowing how
// the last attempt ended (nil before the first): a stream of a striped
// tunnel joins its session, or begins it anew. An error ends the loop.
type adjuster func(ctx context.Context, c *tunnel.ClientConfig, last error) error

// connectEach is connect with adjust, if set, making each attempt's
// configuration.
func connectEach(ctx context.Context, d transport, cfg tunnel.ClientConfig, adjust adjuster, rc Reconnect, log *slog.Logger) error {
	failures := 0
	var last error
	for attempt := 0; ; attempt++ {
		c := cfg
		if adjust != nil {
			if err := adjust(ctx, &c, last); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		connCtx, cancel := context.WithCancelCause(ctx)
		if attempt > 0 {
			// The first attempt may wait for a password; a reconnect
			// must not wait for ever on a connection that died while it
			// was being set up.
			c.HandshakeTimeout = reconnectHandshakeTimeout
		}
		began := time.Now()
		ups := cfg.Link.Ups()
		err := dialOnce(connCtx, cancel, d, c, rc.Hangup)
		last = err
		up := cfg.Link.Ups() > ups
		hungUp := errors.Is(context.Cause(connCtx), errHangup)
		cancel(nil)
		switch {
		case ctx.Err() != nil:
			return nil
		case !rc.Enabled:
			return err
		case !hungUp && !retryable(err, up):
			return err
		}
		failures = failuresAfter(failures, up, time.Since(began))
		if rc.Tries > 0 && failures >= rc.Tries {
			return fmt.Errorf("giving up after %d failed attempts (--reconnect-tries): %w", rc.Tries, err)
		}
		cfg.Link.Detached()
		wait := jitter(rc.Backoff(failures), orDefault(rc.Max, DefaultBackoffMax))
		reason := "the server closed the tunnel"
		switch {
		case hungUp:
			wait, reason = 0, "hangup"
		case err != nil:
			reason = reasonOf(err)
		}
		log.Warn("connection ended; reconnecting", "reason", reason, "attempt", failures, "in", wait.Round(time.Millisecond))
		if rc.Retrying != nil {
			rc.Retrying(failures, wait, reason)
		}
		select {
		case <-time.After(wait):
		case <-rc.Hangup:
		case <-ctx.Done():
			return nil
		}
	}
}

// transport dials one connection and runs the tunnel over it.
type transport interface {
	run(ctx context.Context, cfg tunnel.ClientConfig) error
}

// framed is a transport for sshvpn's framing: sshvpn runs on the server.
type framed struct{ spawn.Dialer }

func (f framed) run(ctx context.Context, cfg tunnel.ClientConfig) error {
	conn, err := f.Dial(ctx)
	if err != nil {
		return dialError{err}
	}
	cfg.ServerAddr = conn.PeerAddr
	return tunnel.RunClient(ctx, conn, cfg)
}

// packets is a transport that carries packets itself (--openssh-tun).
type packets struct{ spawn.PacketDialer }

func (p packets) run(ctx context.Context, cfg tunnel.ClientConfig) error {
	conn, err := p.DialPackets(ctx)
	if err != nil {
		return dialError{err}
	}
	cfg.ServerAddr = conn.PeerAddr
	return tunnel.RunPackets(ctx, conn, cfg)
}

// dialOnce runs one connection.
func dialOnce(ctx context.Context, cancel context.CancelCauseFunc, d transport, cfg tunnel.ClientConfig, hangup <-chan os.Signal) error {
	if hangup != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-hangup:
				cancel(errHangup)
			case <-stop:
			}
		}()
	}
	if t := cfg.Link.Tunnel(); len(t.Addrs) > 0 {
		// Ask for what this link has: a pool gives the lease back.
		cfg.Addrs, cfg.PeerAddrs = t.Addrs, t.PeerAddrs
	}
	return d.run(ctx, cfg)
}

// reasonOf is why a connection ended, for a person (the reconnect line,
// systemd's STATUS): the failure itself, without the layers that passed
// it up ("tunnel: connection to the peer lost: spawn: ...").
func reasonOf(err error) string {
	var exit *spawn.ExitError
	var dead *tunnel.DeadPeerError
	var remote *tunnel.RemoteError
	switch {
	case errors.As(err, &exit):
		return strings.TrimPrefix(exit.Error(), "spawn: ")
	case errors.As(err, &dead):
		return strings.TrimPrefix(dead.Error(), "tunnel: ")
	case errors.As(err, &remote):
		return remote.Error()
	}
	return err.Error()
}

// dialError is a Dialer's failure to start a connection at all (no ssh
// binary, a bad command line): a retry cannot help, unless the Dialer,
// which connects itself (--native), says the failure passes.
type dialError struct{ error }

func (e dialError) Unwrap() error { return e.error }

// retryable is tunnel.Retryable, with the Dialer's own failures.
func retryable(err error, up bool) bool {
	var dial dialError
	if errors.As(err, &dial) {
		var temp interface{ Temporary() bool }
		return errors.As(dial.error, &temp) && temp.Temporary()
	}
	return tunnel.Retryable(err, up)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
