package policy

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in             string
		bytes, packets float64
		err            string
	}{
		{in: "20Mbit", bytes: 2.5e6},
		{in: "800kbit", bytes: 1e5},
		{in: "1Gbit/s", bytes: 1.25e8},
		{in: "2.5MB", bytes: 2.5e6},
		{in: "100kB", bytes: 1e5},
		{in: "5000pps", packets: 5000},
		{in: "20Mb", err: "say bit or B"},
		{in: "fast", err: "want a number"},
		{in: "10parsecs", err: "unknown unit"},
		{in: "-5pps", err: "want a number"},
		{in: "8bit", err: "below one packet"},
	} {
		var l RateLimit
		err := ParseRate(c.in, &l)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseRate(%q) = %v, want an error containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || l.BytesPerSec != c.bytes || l.PacketsPerSec != c.packets {
			t.Errorf("ParseRate(%q) = %+v, %v; want %v B/s, %v pps", c.in, l, err, c.bytes, c.packets)
		}
	}
}
