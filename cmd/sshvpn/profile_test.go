package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/sshvpn/sshvpn/internal/netnstest"
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
	prof, err := loadProfile("office", "")
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
	prof, err = loadProfile("typo", "")
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
		if _, err := loadProfile(bad, ""); err == nil {
			t.Errorf("profile name %q accepted", bad)
		}
	}
	if _, err := loadProfile("missing", ""); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("a missing profile: %v", err)
	}
}

// TestProfileUnderSudo: root under sudo does not read the invoking user's
// profiles (they could run hooks as root), even when sudo keeps HOME.
func TestProfileUnderSudo(t *testing.T) {
	netnstest.NeedRoot(t, "files of another account")
	writeProfile(t, "mine", "destination = \"gw\"\nup = \"/tmp/evil\"\n")
	t.Setenv("SUDO_UID", "1000")
	if p, err := loadProfile("mine", ""); err == nil {
		t.Errorf("root under sudo read %s", p.path)
	}
}

// TestProfilePermissions: a profile (or its directory) that another
// account owns or that others can write is refused, as OpenSSH refuses
// such configuration files: it would run its hooks as root. Root running
// with a user's HOME and no SUDO_UID (as "su -m" leaves it) is the case
// the probe found.
func TestProfilePermissions(t *testing.T) {
	netnstest.NeedRoot(t, "files of another account")
	writeProfile(t, "ww", "destination = \"gw\"\nup = \"/tmp/evil\"\n")
	home := os.Getenv("HOME")
	dir := filepath.Join(home, ".config", "sshvpn")
	file := filepath.Join(dir, "ww.conf")
	if _, err := loadProfile("ww", ""); err != nil {
		t.Fatalf("root's own profile: %v", err)
	}
	os.Chmod(file, 0o666)
	if _, err := loadProfile("ww", ""); err == nil || !strings.Contains(err.Error(), "bad owner or permissions on "+file) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("a 0666 profile: %v", err)
	}
	os.Chmod(file, 0o644)
	os.Chown(file, 1000, 1000) // a user's, read by root with the user's HOME
	if _, err := loadProfile("ww", ""); err == nil || !strings.Contains(err.Error(), "owned by uid 1000") {
		t.Errorf("a profile of uid 1000 read by root: %v", err)
	}
	os.Chown(file, 0, 0)
	os.Chmod(dir, 0o777)
	if _, err := loadProfile("ww", ""); err == nil || !strings.Contains(err.Error(), "bad owner or permissions on "+dir) {
		t.Errorf("a profile in a directory anyone can write: %v", err)
	}
	os.Chmod(dir, 0o755)
	os.Chown(dir, 1000, 1000)
	if _, err := loadProfile("ww", ""); err == nil || !strings.Contains(err.Error(), "owned by uid 1000") {
		t.Errorf("a profile in a directory of uid 1000: %v", err)
	}
}

// TestProfileAmbiguous: a name that both the account's directory and
// the system's have is refused unless --user or --system picks one, and
// the profile says which file it came from.
func TestProfileAmbiguous(t *testing.T) {
	writeProfile(t, "office", `destination = "me@gw"`)
	system := t.TempDir()
	old := systemProfiles
	systemProfiles = system
	t.Cleanup(func() { systemProfiles = old })
	if err := os.WriteFile(filepath.Join(system, "office.conf"), []byte(`destination = "all@gw"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadProfile("office", ""); err == nil || !strings.Contains(err.Error(), "sshvpn up --user office or sshvpn up --system office") {
		t.Errorf("an ambiguous name: %v", err)
	}
	for from, want := range map[string]string{"user": "me@gw", "system": "all@gw"} {
		p, err := loadProfile("office", from)
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		if d, _ := p.key("destination"); d != want || (from == "system") != strings.HasPrefix(p.path, system) {
			t.Errorf("%s: %s from %s", from, d, p.path)
		}
	}
	var c CLI
	parser, _ := kong.New(&c)
	if _, err := parser.Parse([]string{"up", "--user", "--system", "office"}); err == nil {
		t.Error("up --user --system was accepted")
	}
}
