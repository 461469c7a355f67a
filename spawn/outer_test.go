package spawn

import (
	"net/netip"
	"testing"
)

// TestSSHConnection: sshd's SSH_CONNECTION names the server's end first
// as the local one; anything else is refused.
func TestSSHConnection(t *testing.T) {
	l, r, err := sshConnection("192.0.2.1 40000 192.0.2.2 22")
	if err != nil || l != netip.MustParseAddrPort("192.0.2.2:22") || r != netip.MustParseAddrPort("192.0.2.1:40000") {
		t.Errorf("sshConnection = %v, %v, %v", l, r, err)
	}
	l, _, err = sshConnection("::ffff:192.0.2.1 40000 ::ffff:192.0.2.2 22")
	if err != nil || l != netip.MustParseAddrPort("192.0.2.2:22") {
		t.Errorf("IPv4-mapped: %v, %v", l, err)
	}
	for _, bad := range []string{"", "192.0.2.1 40000", "192.0.2.1 x 192.0.2.2 22", "a 1 b 2", "192.0.2.1 70000 192.0.2.2 22"} {
		if _, _, err := sshConnection(bad); err == nil {
			t.Errorf("sshConnection(%q) succeeded", bad)
		}
	}
}
