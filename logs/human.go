package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sshvpn/sshvpn/internal/text"
	"github.com/sshvpn/sshvpn/tunnel"
)

// Log formats for --log-format.
const (
	Text   = "text"   // short lines for a person (the default)
	Logfmt = "logfmt" // slog's key=value lines
	JSON   = "json"   // one JSON object per line
)

// humanHandler writes short lines for a person: "warning: " or "error: "
// in front when it matters, the message, then the attributes as key=value
// with lists comma-separated. A record with side=remote is the server's,
// relayed: it starts "server: ".
type humanHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	lvl   slog.Leveler
	attrs []slog.Attr
}

func newHumanHandler(w io.Writer, lvl slog.Leveler) *humanHandler {
	return &humanHandler{mu: new(sync.Mutex), w: w, lvl: lvl}
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.lvl.Level() }

func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	var attrs []slog.Attr
	server := false
	add := func(a slog.Attr) bool {
		switch {
		case a.Key == sideKey && a.Value.String() == "remote":
			server = true
		case a.Key == "" || a.Key == tunnel.AdminOnlyKey:
		default:
			attrs = append(attrs, a)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if server {
		b.WriteString("server: ")
	}
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(r.Message)
	for _, a := range attrs {
		b.WriteByte(' ')
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(humanValue(a.Value))
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// sideKey marks a record as one side's: side=remote is the server's.
const sideKey = "side"

// humanValue renders a value: lists of addresses comma-separated, text
// quoted only when it has spaces or quotes.
func humanValue(v slog.Value) string {
	var s string
	switch x := v.Resolve().Any().(type) {
	case []netip.Prefix:
		s = joinStrings(x, ",")
	case []netip.Addr:
		s = joinStrings(x, ",")
	case []string:
		s = strings.Join(x, ",")
	default:
		s = v.Resolve().String()
	}
	if s == "" || strings.ContainsAny(s, " \t\"=") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// joinStrings joins the text of xs with sep.
func joinStrings[T fmt.Stringer](xs []T, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, sep)
}

func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(slices.Clip(h.attrs), as...)
	return &n
}

// WithGroup is not used by sshvpn; groups are flattened.
func (h *humanHandler) WithGroup(string) slog.Handler { return h }

// Relay is where the spawned ssh's stderr goes on the client: the remote
// sshvpn's log lines (logfmt with side=remote, which is what the remote
// side always writes for the client) are parsed and logged again through
// the client's logger, in its format and at its level, once, marked as
// the server's; anything else (ssh's own messages) passes through as it is.
type Relay struct {
	Log *slog.Logger // the client's log
	Raw io.Writer    // where other lines go (stderr)

	mu   sync.Mutex
	line []byte
}

func (r *Relay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range p {
		if c != '\n' {
			if len(r.line) < 64<<10 {
				r.line = append(r.line, c)
			}
			continue
		}
		r.emit(string(r.line))
		r.line = r.line[:0]
	}
	return len(p), nil
}

// Flush writes a last line that had no newline.
func (r *Relay) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.line) > 0 {
		r.emit(string(r.line))
		r.line = r.line[:0]
	}
}

func (r *Relay) emit(line string) {
	// ssh ends its own lines with "\r\n" (it may have put the terminal in
	// raw mode); the '\r' is part of the line ending, not a character to
	// defuse into a '?'.
	line = strings.TrimSuffix(line, "\r")
	rec, ok := parseRemoteLine(line)
	if !ok {
		// ssh's own message, or the server's shell: shown, defused.
		fmt.Fprintln(r.Raw, text.Clean(line, true))
		return
	}
	if r.Log.Enabled(context.Background(), rec.Level) {
		r.Log.Handler().Handle(context.Background(), rec)
	}
}

// parseRemoteLine parses a line the remote side logged for the client:
// logfmt starting with level= and carrying side=remote.
func parseRemoteLine(line string) (slog.Record, bool) {
	if !strings.HasPrefix(line, "level=") {
		return slog.Record{}, false
	}
	kvs, ok := parseLogfmt(line)
	if !ok {
		return slog.Record{}, false
	}
	var lvl slog.Level
	var msg string
	remote := false
	attrs := []slog.Attr{slog.String(sideKey, "remote")} // ours: one the server sends is dropped
	for _, kv := range kvs {
		switch kv[0] {
		case "level":
			if lvl.UnmarshalText([]byte(kv[1])) != nil {
				return slog.Record{}, false
			}
		case "msg":
			msg = kv[1]
		case sideKey:
			remote = kv[1] == "remote"
		case "time":
		default:
			// One line each: a newline in the server's text must not
			// start a line of the client's own.
			v := text.Clean(kv[1], false)
			if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") { // a list, as slog prints one
				v = strings.Join(strings.Fields(v[1:len(v)-1]), ",")
			}
			attrs = append(attrs, typed(kv[0], v))
		}
	}
	if !remote {
		return slog.Record{}, false
	}
	rec := slog.NewRecord(time.Now(), lvl, text.Clean(msg, false), 0)
	rec.AddAttrs(attrs...)
	return rec, true
}

// typed is a value of the server's line with the type the client's own
// lines give it: whole numbers as numbers, true and false as booleans,
// the rest as text (one schema for both sides' JSON).
func typed(key, v string) slog.Attr {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && (v == "0" || !strings.HasPrefix(v, "0")) {
		return slog.Int64(key, n)
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		return slog.Bool(key, b)
	}
	return slog.String(key, v)
}

// parseLogfmt splits slog's text format: key=value pairs separated by
// spaces, values in Go quotes when they need them.
func parseLogfmt(s string) ([][2]string, bool) {
	var out [][2]string
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return nil, false
		}
		key, rest := s[:eq], s[eq+1:]
		if strings.ContainsFunc(key, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
		}) {
			return nil, false
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, false
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
			val, rest = rest[:sp], rest[sp:]
		} else {
			val, rest = rest, ""
		}
		out = append(out, [2]string{key, val})
		s = rest
	}
	return out, true
}
