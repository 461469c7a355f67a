package tunnel

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/policy"
)

// DefaultSoftware names a build that says nothing else in the handshake.
const DefaultSoftware = "sshvpn dev"

// software is name, or DefaultSoftware.
func software(name string) string {
	if name == "" {
		return DefaultSoftware
	}
	return name
}

// Tunnel is what the handshake decided (see policy.Tunnel).
type Tunnel = policy.Tunnel

// handshakeTimeout bounds how long the server waits for the client's
// preamble and Hello. The client's wait for the server's preamble is not
// bounded (ssh may be asking the user for a password); once it has arrived,
// the server's answer must follow within answerTimeout, which leaves room for
// the server's up hook.
const (
	handshakeTimeout = 30 * time.Second
	answerTimeout    = 2 * time.Minute
)

// RemoteError is an Error frame from the peer: it refused or gave up, and
// says why.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "remote: " + e.Msg }

// JoinError is the server's refusal of a connection as one more stream of
// a striped session (the session has ended, say): the client may start
// a session anew.
type JoinError struct{ Err error }

func (e *JoinError) Error() string { return "tunnel: joining the striped session: " + e.Err.Error() }
func (e *JoinError) Unwrap() error { return e.Err }

// errProtocol marks a peer that does not speak the protocol as it should.
var errProtocol = errors.New("tunnel: protocol error")

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
		return nil, &RemoteError{Msg: policy.Printable(p)}
	}
	return nil, fmt.Errorf("%w, got %v", errNoHello, t)
}

// readPreamble reads the peer's preamble. An empty stream is reported as
// io.EOF wrapped with context, keeping the transport's own error (such as
// spawn's exit status) when it has one.
func readPreamble(r *framing.Reader) error {
	_, err := r.ReadPreamble()
	if err == io.EOF {
		return fmt.Errorf("tunnel: the remote closed the connection before the handshake: %w", err)
	}
	return err
}

// prefixes logs a list of addresses or networks as one string,
// "198.18.0.1/30,2001:2::1/126", the same in every log format and on
// both sides (the server's lines reach the client as text).
type prefixes []netip.Prefix

func (p prefixes) LogValue() slog.Value {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = x.String()
	}
	return slog.StringValue(strings.Join(s, ","))
}

// logger is l, or a logger that discards when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// orDefault is d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// isClosed reports whether err says that a file or stream was closed.
func isClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADF) || errors.Is(err, io.ErrClosedPipe)
}
