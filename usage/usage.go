// Package usage keeps a server's accounting: per key (the authorized
// key's fingerprint, or the account and forced command without one), the
// bytes each way, the sessions, when it was first and last seen, and the
// bytes of the current quota period. The totals live in usage.json in
// the state directory (--state-dir), so they outlive sessions, and every
// change is made under the directory's lock and written atomically.
//
// A running session adds what it carried since its last addition every
// few seconds (its monitor's refresh), as a delta: concurrent sessions of
// one key add up, and a session killed outright (kill -9) loses at most
// the seconds since its last addition and counts nothing twice.
package usage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sshvpn/sshvpn/internal/statedir"
	"github.com/sshvpn/sshvpn/internal/text"
)

// File is the accounting's file name in the state directory.
const File = "usage.json"

// Entry is one key's totals.
type Entry struct {
	Key         string    `json:"key"`
	User        string    `json:"user"`
	BytesIn     uint64    `json:"bytes_in"`  // from the client
	BytesOut    uint64    `json:"bytes_out"` // to the client
	Sessions    int       `json:"sessions"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	PeriodStart time.Time `json:"period_start,omitzero"` // the quota period's
	PeriodBytes uint64    `json:"period_bytes"`          // both ways, in the period
}

// Quota is a cap on the bytes a key moves, both ways together, per
// period (--quota 50GB/30d).
type Quota struct {
	Bytes  uint64
	Period time.Duration
}

// IsZero reports whether q caps nothing.
func (q Quota) IsZero() bool { return q.Bytes == 0 }

// ParseQuota reads "50GB/30d": a size (B, KB, MB, GB, TB, powers of
// 1000; KiB... powers of 1024) and a period (h, d, w, or a Go duration).
func ParseQuota(s string) (Quota, error) {
	size, period, ok := strings.Cut(s, "/")
	if !ok {
		return Quota{}, fmt.Errorf("usage: quota %q: want SIZE/PERIOD, e.g. 50GB/30d", s)
	}
	n, err := parseSize(size)
	if err != nil || n == 0 {
		return Quota{}, fmt.Errorf("usage: quota %q: the size: want e.g. 50GB or 500MiB", s)
	}
	d, err := parsePeriod(period)
	if err != nil || d <= 0 {
		return Quota{}, fmt.Errorf("usage: quota %q: the period: want e.g. 30d, 1w or 12h", s)
	}
	return Quota{Bytes: n, Period: d}, nil
}

func parseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil || n > (1<<63)/u.mult {
				return 0, errors.New("bad size")
			}
			return n * u.mult, nil
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

func parsePeriod(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if num, ok := strings.CutSuffix(s, suffix); ok {
			n, err := strconv.Atoi(num)
			if err != nil || n <= 0 || n > 3650 {
				return 0, errors.New("bad period")
			}
			return time.Duration(n) * unit, nil
		}
	}
	return time.ParseDuration(s)
}

// String is the quota as ParseQuota reads it.
func (q Quota) String() string {
	if q.Period%(24*time.Hour) == 0 {
		return fmt.Sprintf("%s/%dd", Bytes(q.Bytes), q.Period/(24*time.Hour))
	}
	return fmt.Sprintf("%s/%v", Bytes(q.Bytes), q.Period)
}

// Bytes writes n in decimal units, as a quota is given.
func Bytes(n uint64) string {
	switch {
	case n >= 1e9:
		return decimal(float64(n)/1e9) + "GB"
	case n >= 1e6:
		return decimal(float64(n)/1e6) + "MB"
	case n >= 1e3:
		return decimal(float64(n)/1e3) + "KB"
	}
	return fmt.Sprintf("%dB", n)
}

// decimal writes v with at most two decimals.
func decimal(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// Read returns the totals kept in dir, by key.
func Read(dir string) (map[string]Entry, error) {
	b, err := os.ReadFile(filepath.Join(dir, File))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Entry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	m := map[string]Entry{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("usage: %s: %w", filepath.Join(dir, File), err)
	}
	return m, nil
}

// update changes key's entry under dir's lock and writes it back.
func update(dir, key string, f func(e *Entry)) (Entry, error) {
	unlock, err := statedir.Lock(dir, ".usage.lock")
	if err != nil {
		return Entry{}, fmt.Errorf("usage: %w", err)
	}
	defer unlock()
	m, err := Read(dir)
	if err != nil {
		return Entry{}, err
	}
	e := m[key]
	e.Key = key
	f(&e)
	m[key] = e
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Entry{}, fmt.Errorf("usage: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".usage-*.tmp")
	if err != nil {
		return Entry{}, fmt.Errorf("usage: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return Entry{}, fmt.Errorf("usage: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Entry{}, fmt.Errorf("usage: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, File)); err != nil {
		return Entry{}, fmt.Errorf("usage: %w", err)
	}
	return e, nil
}

// Begin counts a session of key (of account user) starting at now, and
// returns the key's totals; a quota period that is over starts anew. A
// session that the quota refuses (Spent) is not counted.
func Begin(dir, key, user string, q Quota, now time.Time) (Entry, error) {
	return update(dir, key, func(e *Entry) {
		renew(e, q, now)
		if Spent(*e, q) != "" {
			return
		}
		e.User, e.Sessions, e.LastSeen = user, e.Sessions+1, now
		if e.FirstSeen.IsZero() {
			e.FirstSeen = now
		}
	})
}

// Add adds what a session of key carried since its last addition.
func Add(dir, key string, in, out uint64, q Quota, now time.Time) (Entry, error) {
	return update(dir, key, func(e *Entry) {
		renew(e, q, now)
		e.BytesIn += in
		e.BytesOut += out
		e.PeriodBytes += in + out
		e.LastSeen = now
	})
}

// renew starts a new quota period once the current one is over.
func renew(e *Entry, q Quota, now time.Time) {
	if q.IsZero() {
		return
	}
	if e.PeriodStart.IsZero() || now.Sub(e.PeriodStart) >= q.Period {
		e.PeriodStart, e.PeriodBytes = now, 0
	}
}

// Spent says why key may move no more under q, or "" while it may.
func Spent(e Entry, q Quota) string {
	if q.IsZero() || e.PeriodBytes < q.Bytes {
		return ""
	}
	return fmt.Sprintf("the quota of this key, %s, is spent (%s moved since %s); it renews on %s",
		q, Bytes(e.PeriodBytes), e.PeriodStart.UTC().Format("2006-01-02 15:04 UTC"), e.PeriodStart.Add(q.Period).UTC().Format("2006-01-02 15:04 UTC"))
}

// Sorted lists the entries of m by key.
func Sorted(m map[string]Entry) []Entry {
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Show writes the entries as a table for a person.
func Show(w io.Writer, entries []Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tUSER\tIN\tOUT\tSESSIONS\tFIRST SEEN\tLAST SEEN\tPERIOD")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", text.Clean(e.Key, false), text.Clean(e.User, false), Bytes(e.BytesIn), Bytes(e.BytesOut),
			e.Sessions, e.FirstSeen.Format(time.DateTime), e.LastSeen.Format(time.DateTime), Bytes(e.PeriodBytes))
	}
	return tw.Flush()
}
