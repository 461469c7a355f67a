package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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

// TestScale: what scripts/scale.sh checks with many clients, with a few:
// clients started at once against one --pool key all come up, with
// distinct addresses (IPv4 and IPv6); each reaches the server's tunnel
// address and its neighbour through the forwarding server; the server's
// memory per session stays modest; and after SIGTERM to every client,
// nothing is left on the server: no remote sshvpn, no session sshd, no
// device. (The README's figures come from scale.sh with N=100, which
// takes longer than CI should.)
func TestScale(t *testing.T) {
	const n = 4
	l := newLab(t, fmt.Sprintf("LAB_CLIENTS=%d", n), "LAB_MAX_STARTUPS=50")
	l.setKeys("root", "--pool", "198.18.64.0/24", "--pool", "fd00:64::/64", "--dev", "vpn%d", "--state-dir", l.dir+"/state")
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	sessionsBefore := len(l.pidsOf(l.Server, "sshd"))

	clients := []string{l.Client}
	for k := 2; k <= n; k++ {
		clients = append(clients, l.Client+strconv.Itoa(k))
	}
	vpns := make([]*vpn, n)
	for i, ns := range clients { // all at once
		vpns[i] = l.startIn(ns, "--dev", "vpn0", "root@server")
	}
	addrs := map[string]string{}
	six := map[string]bool{}
	for i, ns := range clients {
		l.waitUp(vpns[i], `msg="tunnel up"`)
		a := tunAddr(t, l, ns, "-4")
		if other, ok := addrs[a]; ok {
			t.Errorf("%s and %s share %s", other, ns, a)
		}
		addrs[a] = ns
		six[tunAddr(t, l, ns, "-6")] = true
	}
	if len(six) != n {
		t.Errorf("%d distinct IPv6 addresses for %d clients", len(six), n)
	}
	for i, ns := range clients {
		if err := l.ping(ns, "198.18.64.1"); err != nil {
			t.Error(err)
		}
		if err := l.ping(ns, tunAddr(t, l, clients[(i+1)%n], "-4")); err != nil {
			t.Errorf("to its neighbour: %v", err)
		}
	}
	// The remote sshvpn's resident memory per session.
	var rss int
	remotes := l.pidsOf(l.Server, "sshvpn")
	for _, pid := range remotes {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.Atoi(f[1])
				rss += kb
			}
		}
	}
	if len(remotes) != n {
		t.Errorf("%d remote sshvpn processes for %d sessions", len(remotes), n)
	} else if per := rss / n; per > 64<<10 {
		t.Errorf("%d KiB of remote sshvpn per session, want under 64 MiB", per)
	} else {
		t.Logf("remote sshvpn: %d KiB per session", per)
	}

	for _, v := range vpns {
		v.cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, v := range vpns {
		if err, log := v.wait(t, 15*time.Second); err != nil {
			t.Errorf("client %d: exit %v:\n%s", i+1, err, log)
		}
	}
	if !eventually(15*time.Second, func() bool {
		return len(l.pidsOf(l.Server, "sshvpn")) == 0 && len(l.pidsOf(l.Server, "sshd")) <= sessionsBefore &&
			!strings.Contains(l.mustIn(l.Server, "ip", "-o", "link"), "vpn")
	}) {
		t.Errorf("left on the server: sshvpn %v, sshd %v (was %d), devices:\n%s",
			l.pidsOf(l.Server, "sshvpn"), l.pidsOf(l.Server, "sshd"), sessionsBefore, l.mustIn(l.Server, "ip", "-o", "link"))
	}
}

// TestLabTeardownAsPrinted: the teardown command that "lab.sh up" prints
// removes that lab when run as printed, from another directory, for a lab
// with a LAB_DIR of its own.
func TestLabTeardownAsPrinted(t *testing.T) {
	requirePrereqs(t)
	name := fmt.Sprintf("svt%d-td", os.Getpid()%100000)
	dir := filepath.Join(t.TempDir(), "elsewhere")
	up := exec.Command("../scripts/lab.sh", "up")
	up.Env = append(os.Environ(), "LAB_NAME="+name, "LAB_DIR="+dir, "SSHVPN_BIN="+binary)
	out, err := up.CombinedOutput()
	t.Cleanup(func() {
		down := exec.Command("../scripts/lab.sh", "down")
		down.Env = append(os.Environ(), "LAB_NAME="+name, "LAB_DIR="+dir)
		down.Run()
	})
	if err != nil {
		t.Fatalf("lab.sh up: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	printed := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasSuffix(printed, " down") {
		t.Fatalf("the last line of up is not a teardown command: %q", printed)
	}
	down := exec.Command("bash", "-c", printed)
	down.Dir = "/"
	down.Env = []string{"PATH=" + os.Getenv("PATH")} // nothing of this test's environment
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", printed, err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after %q", dir, printed)
	}
	if ns, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(ns), name+"-") {
		t.Errorf("namespaces of %s are left after %q:\n%s", name, printed, ns)
	}
}

// TestSystemdUnitHardened: the systemd unit runs up in the foreground,
// sandboxed as the README says, and systemd-analyze security rates it
// OK (9.6 UNSAFE before).
func TestSystemdUnitHardened(t *testing.T) {
	requireTool(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("../scripts/sshvpn@.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/sshvpn up --foreground %i", "Documentation=", "CapabilityBoundingSet=CAP_NET_ADMIN\n",
		"ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes", "NoNewPrivileges=yes", "DeviceAllow=/dev/net/tun rw"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit has no %q", want)
		}
	}
	// systemd-analyze reads the unit under its own name, as an instance.
	copied := filepath.Join(t.TempDir(), "sshvpn@office.service")
	if err := os.WriteFile(copied, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("systemd-analyze", "security", "--offline=true", copied).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level from systemd-analyze:\n%s", out)
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > 3 {
		t.Errorf("exposure %s %s, want 3 or less (README says 2.5 OK)", m[1], m[2])
	}
}

// TestInstallScript: scripts/install.sh builds the release binary (its
// version and commit stamped, whatever -buildvcs says) and installs it
// with its man page, completions and systemd unit, made from the binary.
func TestInstallScript(t *testing.T) {
	dest := t.TempDir()
	cmd := exec.Command("../scripts/install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+dest, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	root := filepath.Join(dest, "usr/local")
	for _, f := range []string{"bin/sshvpn", "share/man/man1/sshvpn.1", "share/bash-completion/completions/sshvpn",
		"share/zsh/site-functions/_sshvpn", "share/fish/vendor_completions.d/sshvpn.fish"} {
		if st, err := os.Stat(filepath.Join(root, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/systemd/system/sshvpn@.service")); err != nil {
		t.Error(err)
	}
	out, err := exec.Command(filepath.Join(root, "bin/sshvpn"), "--version").Output()
	if err != nil || !regexp.MustCompile(`^sshvpn \S+ \(commit [0-9a-f]{40}(-dirty)?\)`).Match(out) {
		t.Errorf("--version of the release build: %v %q", err, out)
	}
	if out, err := exec.Command("bash", "-n", filepath.Join(root, "share/bash-completion/completions/sshvpn")).CombinedOutput(); err != nil {
		t.Errorf("the bash completion does not parse: %v %s", err, out)
	}
	if out, err := exec.Command("bash", "-c", "source "+filepath.Join(root, "share/bash-completion/completions/sshvpn")+
		"; COMP_WORDS=(sshvpn connect --def); COMP_CWORD=2; _sshvpn; echo ${COMPREPLY[@]}").Output(); err != nil || strings.TrimSpace(string(out)) != "--default-route" {
		t.Errorf("completing 'sshvpn connect --def': %v %q", err, out)
	}
}
