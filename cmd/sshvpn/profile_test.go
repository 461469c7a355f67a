package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func writeProfile(t *testing.T, name, text string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SUDO_UID", "")
	dir := filepath.Join(home, ".config", "sshvpn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestProfile: a profile's keys are the flags' long names; the command
// line overrides them; unknown keys and bad names are refused.
func TestProfile(t *testing.T) {
	writeProfile(t, "office", `
# the office
destination = "admin@gw.example.net"
addr = ["198.18.0.1/30", "2001:2::1/126"]
peer_addr = ["198.18.0.2/30", "2001:2::2/126"]
route = ["198.51.100.0/24"]
default-route = true
reconnect = true
mtu = 1300
keepalive = "5s"
ssh-cmd = "ssh -p 2222"
`)
	prof, err := loadProfile("office")
	if err != nil {
		t.Fatal(err)
	}
	var cli CLI
	parser, err := kong.New(&cli, kong.Resolvers(prof))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"connect", "--mtu", "1400", "--", "admin@gw.example.net"}); err != nil {
		t.Fatal(err)
	}
	c := cli.Connect
	if c.MTU != 1400 || !c.DefaultRoute || !c.Reconnect || c.SSHCmd != "ssh -p 2222" || c.Keepalive.String() != "5s" ||
		len(c.Addr) != 2 || c.Addr[1].String() != "2001:2::1/126" || len(c.PeerAddr) != 2 || len(c.Route) != 1 {
		t.Errorf("parsed %+v", c)
	}

	writeProfile(t, "typo", "destination = \"gw\"\ndefualt-route = true\n")
	prof, err = loadProfile("typo")
	if err != nil {
		t.Fatal(err)
	}
	parser, err = kong.New(&CLI{}, kong.Resolvers(prof))
	if err == nil {
		_, err = parser.Parse([]string{"connect", "gw"})
	}
	if err == nil || !strings.Contains(err.Error(), `"defualt-route" is not a flag`) {
		t.Errorf("a profile with a typo: %v", err)
	}
	for _, bad := range []string{"../etc/passwd", "", "-x", "a/b"} {
		if _, err := loadProfile(bad); err == nil {
			t.Errorf("profile name %q accepted", bad)
		}
	}
	if _, err := loadProfile("missing"); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("a missing profile: %v", err)
	}
}

// TestProfileUnderSudo: root under sudo does not read the invoking user's
// profiles (they could run hooks as root), even when sudo keeps HOME.
func TestProfileUnderSudo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	writeProfile(t, "mine", "destination = \"gw\"\nup = \"/tmp/evil\"\n")
	t.Setenv("SUDO_UID", "1000")
	if p, err := loadProfile("mine"); err == nil {
		t.Errorf("root under sudo read %s", p.path)
	}
}
