package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nativeArgs: the in-process SSH client with the lab's configuration.
func (l *lab) nativeArgs(extra ...string) []string {
	return append(append(append([]string(nil), tunnelArgs...), "--native", "-F", l.SSHConfig), extra...)
}

// transferBothWays sends size bytes each way over TCP between the client
// namespace and server (an address in the server namespace), and compares
// the checksums.
func (l *lab) transferBothWays(server string, size int64) {
	l.t.Helper()
	l.transferBothWaysIn(l.Server, server, size)
}

// transferBothWaysIn is transferBothWays to server in namespace ns.
func (l *lab) transferBothWaysIn(ns, server string, size int64) {
	l.t.Helper()
	conn, srv := l.tcpPairIn(ns, net.JoinHostPort(server, "5001"))
	start := time.Now()
	if sent, got := transfer(l.t, conn, srv, size, 3); sent != got {
		l.t.Errorf("%s client->server: checksum mismatch", server)
	}
	if sent, got := transfer(l.t, srv, conn, size, 4); sent != got {
		l.t.Errorf("%s server->client: checksum mismatch", server)
	}
	l.t.Logf("%d MB each way to %s in %v", size>>20, server, time.Since(start))
}

// TestNativeKeyFile: --native with the key file the configuration names:
// ping and a 50 MB checksummed TCP transfer each way, IPv4 and IPv6.
func TestNativeKeyFile(t *testing.T) {
	l := newLab(t)
	v := l.up(l.nativeArgs("root@server")...)
	if strings.Contains(v.log.String(), "spawn: running") {
		t.Fatal("--native ran the ssh binary")
	}
	for _, a := range []string{serverV4, serverV6} {
		if err := l.ping(l.Client, a); err != nil {
			t.Error(err)
		}
		l.transferBothWays(a, 50<<20)
	}
}

// TestNativeAgent: --native with the key held by a real ssh-agent and no
// key file: ping and a 50 MB transfer each way, IPv4 and IPv6.
func TestNativeAgent(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(l.dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	if !eventually(5*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatal("ssh-agent did not start")
	}
	add := exec.Command("ssh-add", filepath.Join(l.dir, "id_ed25519"))
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	// The same host, but no key file: only the agent has the key.
	cfg := l.hostConfig("agent", "IdentityFile "+filepath.Join(l.dir, "no-such-key"), "IdentitiesOnly no")
	l.Env = []string{"SSH_AUTH_SOCK=" + sock}
	v := l.up(append(tunnelArgs, "--native", "-F", cfg, "root@server")...)
	_ = v
	for _, a := range []string{serverV4, serverV6} {
		if err := l.ping(l.Client, a); err != nil {
			t.Error(err)
		}
		l.transferBothWays(a, 50<<20)
	}
}

// hostConfig writes an ssh_config for the lab server with the given lines
// in place of the lab's defaults for them, and returns its path.
func (l *lab) hostConfig(name string, lines ...string) string {
	l.t.Helper()
	set := map[string]string{
		"HostName": "192.0.2.2", "User": "root", "IdentityFile": filepath.Join(l.dir, "id_ed25519"), "IdentitiesOnly": "yes",
		"UserKnownHostsFile": filepath.Join(l.dir, "known_hosts"), "GlobalKnownHostsFile": "/dev/null",
		"StrictHostKeyChecking": "yes", "HostKeyAlias": "server", "ConnectTimeout": "5",
	}
	for _, line := range lines {
		k, v, _ := strings.Cut(line, " ")
		set[k] = v
	}
	var b strings.Builder
	b.WriteString("Host server\n")
	for k, v := range set {
		fmt.Fprintf(&b, "\t%s %s\n", k, v)
	}
	file := filepath.Join(l.dir, "ssh_config."+name)
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return file
}

// TestNativeHostKeys: an unknown host is refused, as ssh refuses it, with
// nothing sent; --accept-new records it and connects, and later connections
// need no flag; a changed key is refused whatever the flags; a known_hosts
// that holds only a key of another type than the server's first choice
// still connects.
func TestNativeHostKeys(t *testing.T) {
	l := newLab(t)
	kh := filepath.Join(l.dir, "known_hosts.empty")
	os.WriteFile(kh, nil, 0o600)
	cfg := l.hostConfig("unknown", "UserKnownHostsFile "+kh)
	v := l.start(append(tunnelArgs, "--native", "-F", cfg, "root@server")...)
	err, log := v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "is not in known_hosts") || !strings.Contains(lastLine(log), "--accept-new") {
		t.Errorf("unknown host: exit %v, last line %q", err, lastLine(log))
	}
	if l.syslogHas(time.Second, "session started") {
		t.Error("a session started on the server for a host the client does not know")
	}

	v = l.up(append(tunnelArgs, "--native", "--accept-new", "-F", cfg, "root@server")...)
	if err, log := v.stop(t); err != nil {
		t.Fatalf("--accept-new: exit %v\n%s", err, log)
	}
	if b, _ := os.ReadFile(kh); !strings.Contains(string(b), "server") {
		t.Errorf("--accept-new recorded nothing: %q", b)
	}
	v = l.up(append(tunnelArgs, "--native", "-F", cfg, "root@server")...)
	if err, log := v.stop(t); err != nil {
		t.Errorf("after --accept-new: exit %v\n%s", err, log)
	}

	// A changed key: known_hosts holds another ed25519 key for the server.
	other := filepath.Join(l.dir, "other_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(other + ".pub")
	changed := filepath.Join(l.dir, "known_hosts.changed")
	os.WriteFile(changed, []byte("server "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n"), 0o600)
	cfg = l.hostConfig("changed", "UserKnownHostsFile "+changed)
	v = l.start(append(tunnelArgs, "--native", "--accept-new", "-F", cfg, "root@server")...)
	err, log = v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(log, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Errorf("changed key with --accept-new: exit %v\n%s", err, log)
	}

	// Only the server's ECDSA key is known: the client must ask for it.
	ecdsa, _ := os.ReadFile(filepath.Join(l.dir, "ssh_host_ecdsa_key.pub"))
	only := filepath.Join(l.dir, "known_hosts.ecdsa")
	os.WriteFile(only, []byte("server "+strings.Join(strings.Fields(string(ecdsa))[:2], " ")+"\n"), 0o600)
	cfg = l.hostConfig("ecdsa", "UserKnownHostsFile "+only)
	v = l.up(append(tunnelArgs, "--native", "-F", cfg, "root@server")...)
	if err, log := v.stop(t); err != nil {
		t.Errorf("known_hosts with the ECDSA key only: exit %v\n%s", err, log)
	}
}

// TestNativeProxyJump: --native through the server to a second sshd on
// the LAN host, which the client cannot reach directly.
func TestNativeProxyJump(t *testing.T) {
	l := newLab(t, "LAB_LAN_SSHD=yes")
	l.up(l.nativeArgs("--dev", "vpn0", "root@lanhost")...)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if out := l.mustIn(l.LAN, "ip", "-o", "addr", "show"); !strings.Contains(out, serverV4+"/30") {
		t.Errorf("the tunnel's far end is not on the LAN host:\n%s", out)
	}
}

// TestNativeSubsystem: --subsystem asks sshd for its "sshvpn" subsystem.
func TestNativeSubsystem(t *testing.T) {
	l := newLab(t)
	// (sshd keeps a subsystem's stderr to itself: no remote "tunnel up".)
	first := l.start(l.nativeArgs("--subsystem", "sshvpn", "root@server")...)
	l.waitUps(first, 1, 20*time.Second)
	if !l.syslogHas(5*time.Second, "tunnel up") {
		t.Errorf("no session on the server:\n%s", l.Syslog)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err, log := first.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
	v := l.start(l.nativeArgs("--subsystem", "nope", "root@server")...)
	err, log := v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), `no subsystem "nope"`) {
		t.Errorf("unknown subsystem: exit %v, last line %q", err, lastLine(log))
	}
}

// TestNativeNotInstalled: the remote command's exit status is explained as
// with the ssh binary.
func TestNativeNotInstalled(t *testing.T) {
	l := newLab(t)
	v := l.start(l.nativeArgs("--remote-cmd", "/nonexistent/sshvpn --remote", "root@server")...)
	err, log := v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "install sshvpn") {
		t.Errorf("exit %v, last line %q", err, lastLine(log))
	}
}

// openSSHTun starts sshvpn --native --openssh-tun on the server's tunN and
// gives that device the server's tunnel addresses, as its admin would.
func (l *lab) openSSHTun(unit string) *vpn {
	l.t.Helper()
	v := l.start(l.nativeArgs("--openssh-tun", "--remote-dev", unit, "root@server")...)
	dev := "tun" + unit
	if !eventually(20*time.Second, func() bool { _, err := l.in(l.Server, "ip", "link", "show", dev); return err == nil && upCount(v) >= 1 }) {
		l.t.Fatalf("no %s on the server, or no tunnel:\n%s", dev, v.log)
	}
	l.mustIn(l.Server, "ip", "addr", "add", serverV4+"/30", "dev", dev)
	l.mustIn(l.Server, "ip", "addr", "add", serverV6+"/126", "dev", dev, "nodad")
	l.mustIn(l.Server, "ip", "link", "set", dev, "up")
	return v
}

// TestOpenSSHTun: against a stock sshd with PermitTunnel, no sshvpn needed:
// ping and a 50 MB transfer each way, IPv4 and IPv6; OpenSSH's own ssh -w
// works against the same sshd at the same time.
func TestOpenSSHTun(t *testing.T) {
	l := newLab(t, "LAB_PERMIT_TUNNEL=yes")
	v := l.openSSHTun("5")
	// Its log names no field it cannot fill (remote_dev="" once).
	if log := v.log.String(); !strings.Contains(log, `msg="tunnel up"`) || strings.Contains(log, `=""`) {
		t.Errorf("the tunnel's log has an empty field, or no 'tunnel up':\n%s", log)
	}
	for _, a := range []string{serverV4, serverV6} {
		if err := l.ping(l.Client, a); err != nil {
			t.Error(err)
		}
		l.transferBothWays(a, 50<<20)
	}
	// ssh -w beside it, on tun6 at both ends.
	sshw := exec.Command("ip", "netns", "exec", l.Client, "ssh", "-F", l.SSHConfig, "-N", "-w", "6:6", "server")
	if err := sshw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshw.Process.Signal(syscall.SIGTERM); sshw.Wait() })
	if !eventually(10*time.Second, func() bool {
		_, e1 := l.in(l.Client, "ip", "link", "show", "tun6")
		_, e2 := l.in(l.Server, "ip", "link", "show", "tun6")
		return e1 == nil && e2 == nil
	}) {
		t.Fatal("ssh -w did not come up beside sshvpn")
	}
	l.mustIn(l.Client, "ip", "addr", "add", "198.18.1.1/30", "dev", "tun6")
	l.mustIn(l.Client, "ip", "link", "set", "tun6", "up")
	l.mustIn(l.Server, "ip", "addr", "add", "198.18.1.2/30", "dev", "tun6")
	l.mustIn(l.Server, "ip", "link", "set", "tun6", "up")
	if err := l.ping(l.Client, "198.18.1.2"); err != nil {
		t.Errorf("ssh -w: %v", err)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Errorf("sshvpn beside ssh -w: %v", err)
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
}

// TestOpenSSHTunRefused: without PermitTunnel, one clear line with the fix.
func TestOpenSSHTunRefused(t *testing.T) {
	l := newLab(t)
	v := l.start(l.nativeArgs("--openssh-tun", "root@server")...)
	err, log := v.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(lastLine(log), "PermitTunnel") {
		t.Errorf("exit %v, last line %q", err, lastLine(log))
	}
}

// TestNativeReconnect: --native with --reconnect comes back after the
// server's sshd restarted, like the spawned ssh.
func TestNativeReconnect(t *testing.T) {
	l := newLab(t)
	v := l.up(append(l.nativeArgs("root@server"), "--reconnect", "--keepalive", "1s", "--dead-after", "3s")...)
	l.restartSSHD()
	l.waitUps(v, 2, 30*time.Second)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
}

// TestNativeServerAlive: a server that stops answering is noticed by the
// ServerAlive keepalives of the configuration (here before sshvpn's own
// dead-peer limit), and --reconnect brings the tunnel back once it answers.
func TestNativeServerAlive(t *testing.T) {
	l := newLab(t)
	cfg := l.hostConfig("alive", "ServerAliveInterval 1", "ServerAliveCountMax 2")
	v := l.up(append(tunnelArgs, "--native", "-F", cfg, "--reconnect", "--dead-after", "60s", "root@server")...)
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "down")
	if !eventually(15*time.Second, func() bool { return strings.Contains(v.log.String(), "stopped answering keepalives") }) {
		t.Fatalf("the dead server was not noticed by the keepalives:\n%s", v.log)
	}
	l.mustIn(l.Server, "ip", "link", "set", "wan0", "up")
	l.waitUps(v, 2, 40*time.Second)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
}
