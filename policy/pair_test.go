package policy

import (
	"net/netip"
	"testing"
)

func TestPartner(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"198.18.0.1/30", "198.18.0.2/30"},
		{"198.18.0.2/30", "198.18.0.1/30"},
		{"198.18.0.0/31", "198.18.0.1/31"},
		{"198.18.0.254/24", "198.18.0.253/24"},
		{"fd00::1/64", "fd00::2/64"},
		{"fd00::1/127", "fd00::/127"},
		{"198.18.0.1/32", ""},
	} {
		got, err := Partner(netip.MustParsePrefix(c.in))
		if c.want == "" {
			if err == nil {
				t.Errorf("Partner(%s) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("Partner(%s) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestCheckPair(t *testing.T) {
	if err := CheckPair(pfx("198.18.0.1/30"), pfx("198.18.0.1/30")); err == nil || !errContains(err, "198.18.0.1") {
		t.Errorf("equal ends: %v", err)
	}
	if err := CheckPair(pfx("198.18.0.1/30", "fd00::1/64"), pfx("198.18.0.2/30", "fd00::1/120")); err == nil {
		t.Error("equal IPv6 ends with other prefix lengths were accepted")
	}
	if err := CheckPair(pfx("198.18.0.1/30"), pfx("198.18.0.2/30")); err != nil {
		t.Errorf("distinct ends: %v", err)
	}
}
