package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHookScripts runs the ready-made hooks from scripts/ as users would:
// route-subnets.sh on the client routes the server's LAN into the tunnel,
// where the server's --nat (which replaced nat-gateway.sh) masquerades the
// client; both are undone when the tunnel goes down.
func TestHookScripts(t *testing.T) {
	requireTool(t, "nft", "nftables")
	l := newLab(t)
	scripts, err := filepath.Abs("../scripts")
	if err != nil {
		t.Fatal(err)
	}
	l.setKeys("root", append(policyArgs, "--dev", "svpn0", "--nat")...)
	l.Env = []string{"SSHVPN_SUBNETS=198.51.100.0/24 2001:db8:2::/64"}
	routeHook := filepath.Join(scripts, "route-subnets.sh")

	clientBefore := l.routes(l.Client)
	forward := func() string {
		return strings.TrimSpace(l.mustIn(l.Server, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"))
	}
	forwardBefore := forward()
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "--up", routeHook, "--down", routeHook, "root@server")...)

	if got := forward(); got != "1\n1" {
		t.Errorf("forwarding on the server is %q, want on for both families", got)
	}
	if out := l.mustIn(l.Server, "nft", "list", "tables"); !strings.Contains(out, "inet sshvpn") {
		t.Errorf("no NAT table on the server:\n%s", out)
	}
	// The LAN sees the server's address: masqueraded.
	if got := l.udpSource(l.Client, l.LAN, l.env["LAB_LAN_HOST"]); got != "198.51.100.1" {
		t.Errorf("the LAN saw IPv4 source %q, want the server's 198.51.100.1", got)
	}
	if got := l.udpSource(l.Client, l.LAN, l.env["LAB_LAN_HOST6"]); got != "2001:db8:2::1" {
		t.Errorf("the LAN saw IPv6 source %q, want the server's 2001:db8:2::1", got)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	if !eventually(5*time.Second, func() bool {
		return !strings.Contains(l.mustIn(l.Server, "nft", "list", "tables"), "inet sshvpn") && forward() == forwardBefore
	}) {
		t.Errorf("--nat left the NAT table or forwarding behind: %s / %q, want %q",
			l.mustIn(l.Server, "nft", "list", "tables"), forward(), forwardBefore)
	}
	if got := l.routes(l.Client); got != clientBefore {
		t.Errorf("route-subnets.sh left routes behind:\nbefore:\n%s\nafter:\n%s", clientBefore, got)
	}
}

// TestScaleScript runs scripts/scale.sh with a few clients: they all come
// up with distinct addresses against one --pool key and reach each other,
// and nothing is left afterwards. (The README's figures come from N=100,
// which takes longer than CI should.)
func TestScaleScript(t *testing.T) {
	requirePrereqs(t)
	name := fmt.Sprintf("svt%d-scale", os.Getpid()%100000)
	cmd := exec.Command("../scripts/scale.sh", "-n", "4")
	cmd.Env = append(os.Environ(), "LAB_NAME="+name, "LAB_DIR="+filepath.Join(os.TempDir(), name), "SSHVPN_BIN="+binary)
	out, err := cmd.CombinedOutput()
	t.Logf("scale.sh -n 4:\n%s", out)
	if err != nil {
		t.Fatalf("scale.sh: %v", err)
	}
	if !strings.Contains(string(out), "| 4 | 4 |") {
		t.Errorf("the summary does not show 4 of 4 clients up")
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), name) {
		t.Errorf("namespaces left behind:\n%s", out)
	}
}
