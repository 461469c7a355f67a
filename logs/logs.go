// Package logs makes sshvpn's loggers: for a person (short lines), logfmt
// or JSON on the client; on the remote side, the split between the
// admin's system log, which gets everything with the session's identity,
// and the client's stream (stderr, through sshd), which gets only what the
// client may see; and the relay that shows the server's lines on the
// client once, in the client's format, marked as the server's.
package logs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"log/syslog"
	"slices"
	"strings"
	"sync"

	"github.com/sshvpn/sshvpn/tunnel"
)

// New logs to w (stderr), the client's log, in format (Text, Logfmt or
// JSON).
func New(w io.Writer, verbose, quiet bool, format string) *slog.Logger {
	lvl := Level(verbose, quiet)
	switch format {
	case Logfmt:
		return slog.New(textHandler(w, lvl))
	case JSON:
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == tunnel.AdminOnlyKey {
				return slog.Attr{}
			}
			return a
		}}))
	}
	return slog.New(newHumanHandler(w, lvl))
}

// Level is the level -v and -q ask for.
func Level(verbose, quiet bool) slog.Level {
	switch {
	case verbose:
		return slog.LevelDebug
	case quiet:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func textHandler(w io.Writer, lvl slog.Level) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if (a.Key == slog.TimeKey && len(groups) == 0) || a.Key == tunnel.AdminOnlyKey {
			return slog.Attr{}
		}
		return a
	}})
}

// NewRemote is the remote side's log. Everything goes to the system
// log (sys, if the server has one) with the session's identity, for the
// server's admin; stderr, which sshd passes to the client, gets only what
// the client may see: no record marked tunnel.AdminOnly, no identity.
//
// The client's stderr always gets logfmt lines with side=remote, which the
// client parses and shows in its own format (see relay), at clientLevel:
// the client may ask for -v or -q, the admin's log follows the server's
// own verbose alone.
func NewRemote(stderr io.Writer, sys *syslog.Writer, verbose bool, clientLevel slog.Level, identity []any) *slog.Logger {
	h := &splitHandler{client: textHandler(stderr, clientLevel).WithAttrs([]slog.Attr{slog.String(sideKey, "remote")})}
	if sys != nil {
		lvl := slog.LevelInfo
		if verbose {
			lvl = slog.LevelDebug
		}
		h.admin = newSyslogHandler(sys, lvl).WithAttrs(argsToAttrs(identity))
	}
	return slog.New(h)
}

func argsToAttrs(args []any) []slog.Attr {
	var r slog.Record
	r.Add(args...)
	var out []slog.Attr
	r.Attrs(func(a slog.Attr) bool { out = append(out, a); return true })
	return out
}

// splitHandler sends records to the admin's handler and, unless marked
// tunnel.AdminOnly, to the client's. Either may be nil.
type splitHandler struct {
	admin, client slog.Handler
}

func (h *splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return (h.admin != nil && h.admin.Enabled(ctx, l)) || (h.client != nil && h.client.Enabled(ctx, l))
}

func (h *splitHandler) Handle(ctx context.Context, r slog.Record) error {
	adminOnly := false
	clean := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == tunnel.AdminOnlyKey {
			adminOnly = true
		} else {
			clean.AddAttrs(a)
		}
		return true
	})
	if h.admin != nil && h.admin.Enabled(ctx, r.Level) {
		h.admin.Handle(ctx, clean.Clone())
	}
	if !adminOnly && h.client != nil && h.client.Enabled(ctx, r.Level) {
		return h.client.Handle(ctx, clean)
	}
	return nil
}

// WithAttrs with tunnel.AdminOnly among as makes a logger for the admin
// alone (a remote hook's output, say).
func (h *splitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	adminOnly := slices.ContainsFunc(as, func(a slog.Attr) bool { return a.Key == tunnel.AdminOnlyKey })
	as = slices.DeleteFunc(slices.Clone(as), func(a slog.Attr) bool { return a.Key == tunnel.AdminOnlyKey })
	n := &splitHandler{}
	if h.admin != nil {
		n.admin = h.admin.WithAttrs(as)
	}
	if h.client != nil && !adminOnly {
		n.client = h.client.WithAttrs(as)
	}
	return n
}

func (h *splitHandler) WithGroup(name string) slog.Handler {
	n := &splitHandler{}
	if h.admin != nil {
		n.admin = h.admin.WithGroup(name)
	}
	if h.client != nil {
		n.client = h.client.WithGroup(name)
	}
	return n
}

// syslogHandler writes each record as one system log message, formatted as
// logfmt by a TextHandler, at the priority of its level.
type syslogHandler struct {
	w   *syslog.Writer
	h   slog.Handler
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func newSyslogHandler(w *syslog.Writer, lvl slog.Level) *syslogHandler {
	buf := new(bytes.Buffer)
	return &syslogHandler{w: w, mu: new(sync.Mutex), buf: buf,
		h: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: lvl, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // syslog stamps the time
			}
			return a
		}})}
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.h.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSpace(h.buf.String())
	switch {
	case r.Level >= slog.LevelError:
		return h.w.Err(msg)
	case r.Level >= slog.LevelWarn:
		return h.w.Warning(msg)
	case r.Level >= slog.LevelInfo:
		return h.w.Info(msg)
	}
	return h.w.Debug(msg)
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &syslogHandler{w: h.w, h: h.h.WithAttrs(as), mu: h.mu, buf: h.buf}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{w: h.w, h: h.h.WithGroup(name), mu: h.mu, buf: h.buf}
}

// OpenSyslog connects to the local system log (/dev/log), or returns nil
// when the server has none.
func OpenSyslog() *syslog.Writer {
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "sshvpn")
	if err != nil {
		return nil
	}
	return w
}

// ClientAsks reads -v or -q from the command the client sent, which sshd
// passes in SSH_ORIGINAL_COMMAND when a forced command replaced it: the
// client's wish for how much of the server's log it sees, which a forced
// command that says -v or -q itself overrides. Nothing else of it is read.
func ClientAsks(original string) (verbose, quiet bool) {
	for _, w := range strings.Fields(original) {
		switch w {
		case "-v", "--verbose":
			verbose = true
		case "-q", "--quiet":
			quiet = true
		}
	}
	return verbose, quiet
}
