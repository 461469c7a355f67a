package tun

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, c := range []struct {
		name string
		want string // substring of the error; empty for valid names
	}{
		{"", ""},
		{"tun0", ""},
		{"vpn-alice", ""},
		{"fifteen-bytes15", ""},
		{"sixteen-bytes-16", "at most 15"},
		{".", "not a valid"},
		{"..", "not a valid"},
		{"a/b", "'/'"},
		{"eth0:1", "':'"},
		{"a b", "white space"},
		{"a\x1bb", "control character"},
	} {
		err := CheckName(c.name)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckName(%q) = %v, want nil", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckName(%q) = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
