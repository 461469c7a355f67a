package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/registry"
)

// statusOf runs "sshvpn status --json" in the root namespace and returns
// the sessions of this lab's client and server (by their pids).
//
// The lab's sshd and its sessions have a /run of their own: the server's
// admin is played by "sshvpn status" run in sshd's mount namespace.
func (l *lab) statusOf(clientPID int) (client, remote *registry.Record) {
	l.t.Helper()
	recs := l.status(exec.Command(l.Bin, "status", "--all", "--json"))
	recs = append(recs, l.status(exec.Command("nsenter", "-t", l.env["LAB_SSHD_PID"], "-m", l.Bin, "status", "--all", "--json"))...)
	for i, r := range recs {
		if r.Side == registry.SideClient && r.PID == clientPID {
			client = &recs[i]
		}
	}
	for i, r := range recs {
		// The remote session is the one whose client has the client's
		// tunnel address, in another namespace.
		if r.Side == registry.SideRemote && client != nil && r.NetNS != client.NetNS && len(r.PeerAddrs) > 0 &&
			len(client.Addrs) > 0 && r.PeerAddrs[0] == client.Addrs[0] {
			remote = &recs[i]
		}
	}
	return client, remote
}

// TestStatus: sshvpn status shows both sides of a running tunnel with its
// addresses, state, RTT and counters; a reconnecting client says so, with
// its attempt; SIGUSR1 logs the counters.
func TestStatus(t *testing.T) {
	l := newLab(t)
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "--keepalive", "1s", "--dead-after", "3s", "--reconnect", "root@server")...)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Fatal(err)
	}
	pid := v.cmd.Process.Pid
	var c, r *registry.Record
	if !eventually(10*time.Second, func() bool {
		c, r = l.statusOf(pid)
		return c != nil && r != nil && c.Status != nil && r.Status != nil && c.Status.RTT > 0 && c.Status.PacketsIn >= 3 && r.Status.PacketsIn >= 3
	}) {
		t.Fatalf("status: client %+v, remote %+v", c, r)
	}
	if c.Status.State != registry.StateUp || c.Dev != "vpn0" || c.Peer != "root@server" || c.Addrs[0].String() != clientV4+"/30" {
		t.Errorf("client record %+v, status %+v", c, c.Status)
	}
	if r.Status.State != registry.StateUp || r.PeerAddrs[0].String() != clientV4+"/30" || !strings.HasPrefix(r.Peer, "192.0.2.1") {
		t.Errorf("remote record %+v, status %+v", r, r.Status)
	}
	// Per network namespace: in the client's, its tunnel; in the root
	// one, none of the lab's but a word on them, and with --all each
	// with the name ip netns knows its namespace by.
	out, err := l.in(l.Client, l.Bin, "status")
	if err != nil || !strings.Contains(out, "client vpn0") || !strings.Contains(out, "state      up") || strings.Contains(out, "netns") {
		t.Errorf("sshvpn status in the client's namespace: %v\n%s", err, out)
	}
	root, err := exec.Command(l.Bin, "status").Output()
	if err != nil || strings.Contains(string(root), "client vpn0") || !strings.Contains(string(root), "more in other network namespaces") {
		t.Errorf("sshvpn status in the root namespace: %v\n%s", err, root)
	}
	all, err := exec.Command(l.Bin, "status", "--all").Output()
	if err != nil || !strings.Contains(string(all), "client vpn0") || !strings.Contains(string(all), "netns      "+l.Client+" (net:[") {
		t.Errorf("sshvpn status --all: %v\n%s", err, all)
	}

	v.cmd.Process.Signal(syscall.SIGUSR1)
	if !eventually(5*time.Second, func() bool { return strings.Contains(v.log.String(), "counters (SIGUSR1)") }) {
		t.Errorf("no counters after SIGUSR1:\n%s", v.log)
	}

	// The server goes away (its sshvpn dies, its network is cut): the
	// client says it is reconnecting.
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "down")
	for _, pid := range l.pidsOf(l.Server, "sshvpn") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if !eventually(20*time.Second, func() bool {
		c, _ = l.statusOf(pid)
		return c != nil && c.Status != nil && c.Status.State == registry.StateReconnecting && c.Status.Attempt >= 1
	}) {
		t.Fatalf("status while the server is gone: %+v", c)
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "up")
	if !eventually(30*time.Second, func() bool {
		c, _ = l.statusOf(pid)
		return c != nil && c.Status != nil && c.Status.State == registry.StateUp && c.Status.Reconnects == 1
	}) {
		t.Errorf("status after the server came back: %+v", c.Status)
	}
}

func (l *lab) status(cmd *exec.Cmd) []registry.Record {
	l.t.Helper()
	out, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("%v: %v", cmd.Args, err)
	}
	var recs []registry.Record
	if err := json.Unmarshal(out, &recs); err != nil {
		l.t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return recs
}

// TestSystemdNotify: under systemd (NOTIFY_SOCKET, played by the test),
// the client says READY once the tunnel is up, a STATUS line while it
// reconnects and when it is back, and STOPPING as it exits.
func TestSystemdNotify(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(l.dir, "notify.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msgs := make(chan string, 20)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pc.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("no notification %s", what)
			return ""
		}
	}
	l.Env = []string{"NOTIFY_SOCKET=" + sock}
	v := l.up(append(tunnelArgs, "--dev", "vpn0", "--reconnect", "root@server")...)
	if m := next("when up"); !strings.HasPrefix(m, "READY=1\nSTATUS=tunnel up: vpn0 198.18.0.1/30") {
		t.Errorf("first notification %q, want READY=1 and the tunnel", m)
	}
	for _, pid := range l.pidsOf(l.Server, "sshvpn") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if m := next("while reconnecting"); !strings.HasPrefix(m, "STATUS=reconnecting (attempt 1") {
		t.Errorf("notification %q, want the reconnect", m)
	}
	if m := next("when back"); !strings.HasPrefix(m, "STATUS=tunnel up: vpn0") {
		t.Errorf("notification %q, want the tunnel up again", m)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	if m := next("at exit"); m != "STOPPING=1" {
		t.Errorf("last notification %q, want STOPPING=1", m)
	}
}

// TestProfileUpDown: "sshvpn up NAME" brings up the tunnel a profile
// describes, flags after NAME override it, sshvpn status names the
// profile, and "sshvpn down NAME" ends it and waits until it has cleaned
// up.
func TestProfileUpDown(t *testing.T) {
	l := newLab(t)
	home := filepath.Join(l.dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".config", "sshvpn"), 0o755); err != nil {
		t.Fatal(err)
	}
	prof := fmt.Sprintf(`# written by hand
destination = "root@server"
ssh-cmd = "ssh -F %s"
addr = ["%s/30", "%s/126"]
peer-addr = ["%s/30", "%s/126"]
dev = "vpn0"
mtu = 1300
`, l.SSHConfig, clientV4, clientV6, serverV4, serverV6)
	if err := os.WriteFile(filepath.Join(home, ".config", "sshvpn", "lab.conf"), []byte(prof), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Env = []string{"HOME=" + home}
	// up returns once the tunnel is up; the tunnel goes on in the
	// background.
	v := l.exec(l.Client, l.Bin, "up", "lab", "--mtu", "1400")
	if err, log := v.wait(t, 60*time.Second); err != nil || !strings.Contains(log, "sshvpn down lab ends it") {
		t.Fatalf("sshvpn up lab: exit %v:\n%s", err, log)
	}
	pid := 0
	for _, r := range l.status(exec.Command(l.Bin, "status", "--all", "--json")) {
		if r.Profile == "lab" {
			pid = r.PID
		}
	}
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("no running tunnel of profile lab after up returned (pid %d)", pid)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if link := l.mustIn(l.Client, "ip", "link", "show", "vpn0"); !strings.Contains(link, "mtu 1400") {
		t.Errorf("--mtu after the profile's name did not win:\n%s", link)
	}
	st, err := exec.Command(l.Bin, "status", "--all").Output()
	if err != nil || !strings.Contains(string(st), "client vpn0 (profile lab)") || !strings.Contains(string(st), "profile    "+filepath.Join(home, ".config/sshvpn/lab.conf")) {
		t.Errorf("sshvpn status: %v\n%s", err, st)
	}
	// A second up says it is up already.
	again := l.exec(l.Client, l.Bin, "up", "lab")
	if err, log := again.wait(t, 10*time.Second); err == nil || !strings.Contains(log, "profile lab is up already") {
		t.Errorf("a second up: exit %v:\n%s", err, log)
	}
	down := exec.Command(l.Bin, "down", "lab")
	if o, err := down.CombinedOutput(); err != nil {
		t.Fatalf("sshvpn down lab: %v\n%s", err, o)
	}
	if processAlive(pid) {
		t.Errorf("sshvpn down returned while the tunnel (pid %d) still runs", pid)
	}
	if _, err := l.in(l.Client, "ip", "link", "show", "vpn0"); err == nil {
		t.Error("vpn0 is still there after sshvpn down")
	}
	// --foreground stays until the tunnel ends, as the systemd unit runs it.
	fg := l.exec(l.Client, l.Bin, "up", "--foreground", "lab")
	l.waitUp(fg, "tunnel up")
	if o, err := exec.Command(l.Bin, "down", "lab").CombinedOutput(); err != nil {
		t.Fatalf("sshvpn down lab: %v\n%s", err, o)
	}
	if err, log := fg.wait(t, 10*time.Second); err != nil {
		t.Errorf("sshvpn up --foreground lab exited with %v after down:\n%s", err, log)
	}
	if o, err := exec.Command(l.Bin, "down", "lab").CombinedOutput(); err == nil || !strings.Contains(string(o), "no tunnel of profile lab") {
		t.Errorf("a second down: %v %s", err, o)
	}
}

// TestOutput: by default the client writes short lines for a person; the
// server's lines reach it once, marked "server:", at the client's
// verbosity (-q hides them, -v shows the server's details, also through a
// forced command); a local hook's failure is not marked as the server's.
func TestOutput(t *testing.T) {
	l := newLab(t)
	lines := func(v *vpn) []string { return strings.Split(strings.TrimSpace(v.log.String()), "\n") }
	count := func(ls []string, prefix string) int {
		n := 0
		for _, line := range ls {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
		return n
	}
	v := l.start(append(tunnelArgs, "--log-format", "text", "root@server")...)
	l.waitUp(v, "tunnel up dev=")
	v.stop(t)
	ls := lines(v)
	if count(ls, "server: tunnel up dev=") != 1 || count(ls, "tunnel up dev=") != 1 || count(ls, "level=") != 0 {
		t.Errorf("default output:\n%s", v.log)
	}
	if count(ls, "server: debug: handshake: client hello") != 1 {
		t.Errorf("-v did not reach the server:\n%s", v.log)
	}

	// A forced command: the client's -v still reaches the server's log
	// lines it sees; -q hides the server's info lines.
	l.setKeys("root", "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30")
	v = l.start("--log-format", "text", "--addr", clientV4+"/30", "--peer-addr", serverV4+"/30", "root@server")
	if !eventually(20*time.Second, func() bool { return strings.Contains(v.log.String(), "server: debug: handshake: client hello") }) {
		t.Errorf("-v through a forced command:\n%s", v.log)
	}
	v.stop(t)
	cmd := exec.Command("ip", "netns", "exec", l.Client, l.Bin, "-q", "-e", "ssh -F "+l.SSHConfig, "--addr", clientV4+"/30", "--peer-addr", serverV4+"/30", "--up", "/bin/false", "root@server")
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "server:") || !strings.Contains(string(out), "sshvpn: hook: up script /bin/false failed") {
		t.Errorf("-q with a failing local hook: %v\n%s", err, out)
	}
}
