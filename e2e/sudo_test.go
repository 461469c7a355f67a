package e2e

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSudo: started by root with sudo's SUDO_UID, SUDO_GID and SUDO_USER
// (and HOME=/root, as sudo sets it), the client runs its ssh as the
// invoking user, with that user's own ~/.ssh (config, key, known_hosts),
// while the device and routes stay root's; --as-root-ssh runs it as root,
// whose ~/.ssh knows no host "server"; --native reads the user's files too.
func TestSudo(t *testing.T) {
	name := userName()
	l := newLab(t, "LAB_USER="+name)
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(l.dir, "home", name)
	dotssh := filepath.Join(home, ".ssh")
	cfg, err := os.ReadFile(l.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The user's own copy of the lab's configuration, key and known_hosts.
	mine := strings.NewReplacer(filepath.Join(l.dir, "id_ed25519"), "~/.ssh/id_ed25519",
		filepath.Join(l.dir, "known_hosts"), "~/.ssh/known_hosts").Replace(string(cfg))
	mine = strings.ReplaceAll(mine, "User root", "User "+name)
	files := map[string][]byte{"config": []byte(mine)}
	for _, f := range []string{"id_ed25519", "known_hosts"} {
		if files[f], err = os.ReadFile(filepath.Join(l.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dotssh, 0o700); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for f, b := range files {
		p := filepath.Join(dotssh, f)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
	os.Chown(dotssh, uid, gid)
	// The server side: the user's own account there, on a device made
	// for it (the key is the lab's, authorized for the account).
	l.userDevice(name)
	l.setKeys(name, "--dev", "svpn0", "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30")

	l.Env = []string{"SUDO_UID=" + u.Uid, "SUDO_GID=" + u.Gid, "SUDO_USER=" + name, "HOME=/root"}
	run := func(args ...string) *vpn { return l.exec(l.Client, append([]string{l.Bin, "-v"}, args...)...) }
	for _, extra := range [][]string{nil, {"--native"}} {
		args := append(append([]string{"--addr", clientV4 + "/30", "--peer-addr", serverV4 + "/30", "--dev", "vpn0"}, extra...), "server")
		v := run(args...)
		l.waitUp(v, "tunnel up")
		if extra == nil {
			ssh := childPID(t, v.cmd.Process.Pid, "ssh")
			if got := uidOf(t, ssh); got != uid {
				t.Errorf("ssh runs as uid %d, want the invoking user's %d", got, uid)
			}
		}
		if err := l.ping(l.Client, serverV4); err != nil {
			t.Error(err)
		}
		if link := l.mustIn(l.Client, "ip", "-o", "addr", "show", "vpn0"); !strings.Contains(link, clientV4) {
			t.Errorf("the device lacks its address:\n%s", link)
		}
		if err, log := v.stop(t); err != nil {
			t.Fatalf("%v: exit %v:\n%s", extra, err, log)
		}
	}
	// The user's agent, when sudo keeps SSH_AUTH_SOCK: the user's ssh
	// finds no key file now, only the agent's key.
	agentDir := filepath.Join(home, "agent")
	if err := os.Mkdir(agentDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(agentDir, uid, gid)
	sock := filepath.Join(agentDir, "sock")
	asUser := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	agent.SysProcAttr = asUser
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	if !eventually(5*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatal("ssh-agent did not start")
	}
	add := exec.Command("ssh-add", filepath.Join(dotssh, "id_ed25519"))
	add.SysProcAttr, add.Env = asUser, []string{"SSH_AUTH_SOCK=" + sock}
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dotssh, "id_ed25519")); err != nil {
		t.Fatal(err)
	}
	agentCfg := strings.ReplaceAll(mine, "IdentitiesOnly yes", "IdentitiesOnly no")
	if err := os.WriteFile(filepath.Join(dotssh, "config"), []byte(agentCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Env = append(l.Env, "SSH_AUTH_SOCK="+sock)
	v := run("--addr", clientV4+"/30", "--peer-addr", serverV4+"/30", "--dev", "vpn0", "server")
	l.waitUp(v, "tunnel up")
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	l.Env = l.Env[:len(l.Env)-1]

	// root's own ssh setup knows no host "server".
	v = run("--as-root-ssh", "--addr", clientV4+"/30", "--peer-addr", serverV4+"/30", "server")
	if err, log := v.wait(t, 30*time.Second); err == nil || !strings.Contains(log, "Could not resolve hostname server") || strings.Contains(log, "tunnel up") {
		t.Errorf("--as-root-ssh: exit %v:\n%s", err, log)
	}
}
