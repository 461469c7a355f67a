package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/sshvpn/sshvpn/spawn"
)

func TestRemoteFlag(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"--remote"}, []string{"remote"}},
		{[]string{"-v", "--remote", "--addr", "x"}, []string{"remote", "-v", "--addr", "x"}},
		{[]string{"host"}, []string{"host"}},
		{[]string{"--", "--remote"}, []string{"--", "--remote"}},
	} {
		if got := remoteFlag(c.in); !slices.Equal(got, c.want) {
			t.Errorf("remoteFlag(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestAuthorizedKey checks the line, and that the command in it splits back
// into exactly the policy's words.
func TestAuthorizedKey(t *testing.T) {
	pub := filepath.Join(t.TempDir(), "id.pub")
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4oYOgAUmkh524PratjCmXWexsre3w6pSTFSul1UN68 me@laptop"
	if err := os.WriteFile(pub, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := authorizedKeyCmd{Sshvpn: `/opt/it's "here"\x/sshvpn`, Options: `from="192.0.2.0/24"`, PubkeyFile: pub}
	c.Mode, c.StateDir, c.Offload = "tun", "/run/sshvpn", true // kong's defaults
	c.Pool = cidrs("198.18.8.0/24")
	c.Dev = "vpn%d"
	line, err := c.line()
	if err != nil {
		t.Fatal(err)
	}
	prefix := `restrict,from="192.0.2.0/24",command="`
	if !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, `" `+key) {
		t.Fatalf("line %q", line)
	}
	quoted := strings.TrimSuffix(strings.TrimPrefix(line, prefix), `" `+key)
	// sshd's dequoting of command="...": \" becomes ", nothing else changes.
	cmd := strings.ReplaceAll(quoted, `\"`, `"`)
	words, err := spawn.SplitCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`/opt/it's "here"\x/sshvpn`, "--remote", "--dev=vpn%d", "--pool=198.18.8.0/24"}
	if !slices.Equal(words, want) {
		t.Errorf("command splits into %q, want %q", words, want)
	}

	c.Addr = cidrs("198.18.0.2/30")
	if _, err := c.line(); err == nil {
		t.Error("--pool with --addr was accepted")
	}
	os.WriteFile(pub, []byte("not a key"), 0o600)
	c.Addr = nil
	if _, err := c.line(); err == nil {
		t.Error("a file without a key was accepted")
	}
}

// TestPolicyDerivesTheOtherSide: a policy naming one side never leaves the
// other to the client.
func TestPolicyDerivesTheOtherSide(t *testing.T) {
	p := policyFlags{Addr: cidrs("198.18.0.2/30"), Mode: "tun"}
	got, err := p.parse(nil)
	if err != nil || len(got.peers) != 1 || got.peers[0] != netip.MustParsePrefix("198.18.0.1/30") {
		t.Errorf("--addr alone: peers %v, %v; want 198.18.0.1/30", got.peers, err)
	}
	p = policyFlags{PeerAddr: cidrs("fd00::2/64"), Mode: "tun"}
	got, err = p.parse(nil)
	if err != nil || len(got.addrs) != 1 || got.addrs[0] != netip.MustParsePrefix("fd00::3/64") {
		t.Errorf("--peer-addr alone: addrs %v, %v; want fd00::3/64", got.addrs, err)
	}
}

func TestAuthorizedKeyNeedsAddresses(t *testing.T) {
	pub := filepath.Join(t.TempDir(), "id.pub")
	os.WriteFile(pub, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4oYOgAUmkh524PratjCmXWexsre3w6pSTFSul1UN68 me\n"), 0o600)
	c := authorizedKeyCmd{Sshvpn: "sshvpn", PubkeyFile: pub}
	c.Mode = "tun"
	if _, err := c.line(); err == nil || !strings.Contains(err.Error(), "--pool") {
		t.Errorf("a policy without addresses: %v, want a refusal naming --addr/--pool", err)
	}
}

func cidrs(ss ...string) []cidr {
	var out []cidr
	for _, s := range ss {
		out = append(out, cidr{netip.MustParsePrefix(s)})
	}
	return out
}

// TestPolicyRefusals: a policy that can serve no client is refused where
// the key line is made, not only when a client connects.
func TestPolicyRefusals(t *testing.T) {
	for _, c := range []struct {
		p      policyFlags
		routes []cidr
		want   string
	}{
		{policyFlags{Addr: cidrs("198.18.0.2/30"), MaxSessions: 5, Mode: "tun"}, nil, "--max-sessions 5 with fixed addresses"},
		{policyFlags{Pool: cidrs("198.18.8.0/24"), MaxSessions: -1, Mode: "tun"}, nil, "want a positive number"},
		{policyFlags{Pool: cidrs("198.18.8.0/24"), Mode: "tun"}, cidrs("198.51.100.0/24"), "--route with --pool"},
		{policyFlags{Pool: cidrs("198.18.8.0/24"), AllowRoute: cidrs("198.18.0.0/16"), Mode: "tun"}, nil, "overlaps --pool"},
		{policyFlags{Addr: cidrs("198.18.0.2/30"), PeerAddr: cidrs("198.18.0.2/30"), Mode: "tun"}, nil, "both ends"},
		{policyFlags{Dev: "a-very-long-tun%d", Mode: "tun"}, nil, "at most 15"},
		{policyFlags{Pool: cidrs("198.18.8.0/24"), Rate: []string{"fast"}, Mode: "tun"}, nil, "--rate"},
	} {
		if _, err := c.p.parse(c.routes); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", c.p, err, c.want)
		}
	}
	p := policyFlags{Pool: cidrs("198.18.8.0/29"), Mode: "tun"}
	if got, err := p.parse(nil); err != nil || got.maxSessions != 5 {
		t.Errorf("pool of 5: max sessions %d, %v", got.maxSessions, err)
	}
	p = policyFlags{Dev: "tun-with-pat%d", Mode: "tun"}
	if _, err := p.parse(nil); err != nil {
		t.Errorf("a pattern the kernel numbers: %v", err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHelpOrder: the client's help lists the flags people use first
// (addresses, routes, reconnect) and the transport's after, under their
// own heading; the top-level help names the common client flags.
func TestHelpOrder(t *testing.T) {
	help := func(args ...string) string {
		var b strings.Builder
		var cli CLI
		p, err := kong.New(&cli, kong.Name("sshvpn"), kong.Description(description), kong.Writers(&b, &b), kong.Exit(func(int) {}),
			kong.ConfigureHelp(kong.HelpOptions{Compact: true}), kong.ExplicitGroups(helpGroups))
		if err != nil {
			t.Fatal(err)
		}
		p.Parse(args)
		return b.String()
	}
	c := help("connect", "--help")
	route, transport, sshCmd := strings.Index(c, "--route="), strings.Index(c, "SSH transport:"), strings.Index(c, "--ssh-cmd=")
	if route < 0 || transport < 0 || !(route < transport && transport < sshCmd) {
		t.Errorf("connect --help: --route at %d, SSH transport at %d, --ssh-cmd at %d:\n%s", route, transport, sshCmd, c)
	}
	if top := help("--help"); !strings.Contains(top, "--default-route") || !strings.Contains(top, "--reconnect") {
		t.Errorf("the top-level help names no client flags:\n%s", top)
	}
}
