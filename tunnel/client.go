package tunnel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/spawn"
)

// Reconnect says whether and how Connect dials again.
type Reconnect struct {
	// Enabled makes Connect dial again, with exponential backoff and
	// jitter, when a connection ends (or the first one fails) for a
	// passing reason. Without it Connect returns after one connection.
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
// first bytes; stableAfter is how long a tunnel must have stayed up for the
// backoff to start over.
const (
	reconnectHandshakeTimeout = time.Minute
	stableAfter               = 30 * time.Second
)

// errHangup ends a connection that Reconnect.Hangup asked to drop.
var errHangup = errors.New("reconnecting at once (hangup)")

// Connect runs the client: it dials d, runs the tunnel over the connection
// with cfg (see RunClient) and, with rc.Enabled, dials again whenever the
// connection ends for a reason that a new one may mend, until ctx ends. The
// link, its device and routes stay as they are in between: what the device
// reads meanwhile is dropped (with --default-route, nothing leaks past the
// tunnel). A failure that another attempt cannot mend (authentication, host
// keys, sshvpn missing on the server, the server's refusal, this side's own
// setup) ends it at once. It returns nil when ctx ends.
func Connect(ctx context.Context, d spawn.Dialer, cfg ClientConfig, rc Reconnect) error {
	log := logger(cfg.Logger)
	lo, hi := orDefault(rc.Min, DefaultBackoffMin), orDefault(rc.Max, DefaultBackoffMax)
	failures := 0
	for attempt := 0; ; attempt++ {
		connCtx, cancel := context.WithCancelCause(ctx)
		c := cfg
		if attempt > 0 {
			// The first attempt may wait for a password; a reconnect
			// must not wait for ever on a connection that died while
			// it was being set up.
			c.HandshakeTimeout = reconnectHandshakeTimeout
		}
		began := time.Now()
		up, err := dialOnce(connCtx, cancel, d, c, rc.Hangup)
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
		if up && time.Since(began) > stableAfter {
			failures = 0 // a tunnel that stayed up a while starts the backoff over
		}
		failures++
		if rc.Tries > 0 && failures >= rc.Tries {
			return fmt.Errorf("sshvpn: giving up after %d failed attempts (--reconnect-tries): %w", rc.Tries, err)
		}
		cfg.Link.Detached()
		wait := lo << min(failures-1, 30)
		wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())) // jitter: many clients of one server do not come back in step
		if wait <= 0 || wait > hi {
			wait = hi
		}
		if hungUp {
			wait = 0
		}
		reason := "the server closed the tunnel"
		switch {
		case hungUp:
			reason = "hangup"
		case err != nil:
			reason = err.Error()
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

// dialOnce runs one connection; up says whether its tunnel came up.
func dialOnce(ctx context.Context, cancel context.CancelCauseFunc, d spawn.Dialer, cfg ClientConfig, hangup <-chan os.Signal) (up bool, err error) {
	conn, err := d.Dial(ctx)
	if err != nil {
		return false, dialError{err}
	}
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
	cfg.ServerAddr = conn.PeerAddr
	if t := cfg.Link.Tunnel(); len(t.Addrs) > 0 {
		// Ask for what this link has: a pool gives the lease back.
		cfg.Addrs, cfg.PeerAddrs = t.Addrs, t.PeerAddrs
	}
	return runClient(ctx, conn, cfg)
}

// dialError is a Dialer's failure to start a connection at all (no ssh
// binary, a bad command line): a retry cannot help.
type dialError struct{ error }

func (e dialError) Unwrap() error { return e.error }

// retryable is Retryable for a connection whose tunnel came up (up) or not:
// once a tunnel was up, whatever ended the connection (the server's side
// giving up on a dead peer exits non-zero, say) may pass, unless the server
// said why it ended the session, or this side failed.
func retryable(err error, up bool) bool {
	var remote *RemoteError
	var local localError
	if up && err != nil && !errors.As(err, &remote) && !errors.As(err, &local) && !errors.Is(err, errLinkDead) {
		return true
	}
	return Retryable(err)
}

// Retryable reports whether a connection that ended with err (nil: the
// server closed the tunnel) before its tunnel came up may be mended by
// dialing again.
func Retryable(err error) bool {
	var (
		remote   *RemoteError
		preamble *framing.PreambleError
		version  *framing.VersionError
		exit     *spawn.ExitError
		local    localError
		dial     dialError
		dead     *DeadPeerError
	)
	switch {
	case err == nil, errors.As(err, &dead):
		return true
	case errors.As(err, &dial):
		// A Dialer that connects itself (Native) says which failures pass.
		var temp interface{ Temporary() bool }
		return errors.As(dial.error, &temp) && temp.Temporary()
	case errors.As(err, &remote), errors.As(err, &preamble), errors.As(err, &local), errors.As(err, &version),
		errors.Is(err, errProtocol):
		return false
	case errors.As(err, &exit):
		return exit.Temporary()
	case errors.Is(err, errLinkDead):
		return false
	}
	return true // the connection was lost some other way
}
