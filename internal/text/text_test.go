package text

import "testing"

func TestClean(t *testing.T) {
	for _, tt := range []struct {
		in         string
		lines, one string
	}{
		{"plain text", "plain text", "plain text"},
		{"a\nb\tc", "a\nb\tc", "a b c"},
		{"\x1b[31mred\x1b[0m", "?[31mred?[0m", "?[31mred?[0m"},
		{"bidi \u202eevil", "bidi ?evil", "bidi ?evil"},
		{"bad \xff byte", "bad ? byte", "bad ? byte"},
		{"c1 \u009b2J", "c1 ?2J", "c1 ?2J"},
		{"grüße 東京", "grüße 東京", "grüße 東京"},
	} {
		if got := Clean(tt.in, true); got != tt.lines {
			t.Errorf("Clean(%q, true) = %q, want %q", tt.in, got, tt.lines)
		}
		if got := Clean(tt.in, false); got != tt.one {
			t.Errorf("Clean(%q, false) = %q, want %q", tt.in, got, tt.one)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"stauts", "status", 1}, {"", "ab", 2}, {"same", "same", 0}, {"donw", "down", 1}, {"dwn", "down", 1}, {"remot", "remote", 1}} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
