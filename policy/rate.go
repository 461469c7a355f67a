package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// RateLimit caps one direction of a session's traffic: the server applies it
// to what the client sends and, separately, to what it sends the client
// (see tunnel.Guard). Packets over the limit are dropped and counted. A zero
// field sets no limit. Both count what the wire carries: a GSO super-packet
// is as many packets as it has segments, and as many bytes as they come to,
// each with its own copy of the IP and transport headers.
type RateLimit struct {
	BytesPerSec   float64
	PacketsPerSec float64
}

// IsZero reports whether l limits nothing.
func (l RateLimit) IsZero() bool { return l.BytesPerSec <= 0 && l.PacketsPerSec <= 0 }

func (l RateLimit) String() string {
	var parts []string
	if l.BytesPerSec > 0 {
		parts = append(parts, strconv.FormatFloat(l.BytesPerSec*8, 'f', -1, 64)+"bit/s")
	}
	if l.PacketsPerSec > 0 {
		parts = append(parts, strconv.FormatFloat(l.PacketsPerSec, 'f', -1, 64)+"pps")
	}
	return strings.Join(parts, ", ")
}

// ParseRate reads one limit: a number with a unit, bits ("800kbit",
// "20Mbit", "1gbit"), bytes ("100kB", "2.5MB") or packets ("5000pps"), per
// second, with an optional "/s"; k, M and G (either case) are powers of
// 1000, and a lone "b" is refused as ambiguous. It sets the field the unit
// names in l.
func ParseRate(s string, l *RateLimit) error {
	in := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	i := strings.IndexFunc(in, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return fmt.Errorf("rate %q: want a number and a unit, such as 20Mbit, 2.5MB or 5000pps", s)
	}
	n, err := strconv.ParseFloat(in[:i], 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("rate %q: want a positive number, such as 20Mbit, 2.5MB or 5000pps", s)
	}
	unit := in[i:]
	mult := 1.0
	if len(unit) > 1 {
		switch unit[0] {
		case 'k', 'K':
			mult, unit = 1e3, unit[1:]
		case 'M', 'm':
			mult, unit = 1e6, unit[1:]
		case 'G', 'g':
			mult, unit = 1e9, unit[1:]
		}
	}
	switch strings.ToLower(unit) {
	case "bit":
		l.BytesPerSec = n * mult / 8
	case "b":
		if unit == "b" {
			return fmt.Errorf("rate %q: say bit or B (bytes)", s)
		}
		l.BytesPerSec = n * mult
	case "pps", "pkt", "p":
		l.PacketsPerSec = n * mult
	default:
		return fmt.Errorf("rate %q: unknown unit %q; use bit (20Mbit), B for bytes (2.5MB) or pps (5000pps)", s, unit)
	}
	if l.BytesPerSec > 0 && l.BytesPerSec < 1500 {
		return fmt.Errorf("rate %q is below one packet per second", s)
	}
	return nil
}
