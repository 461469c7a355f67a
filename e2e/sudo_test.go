package e2e

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
	l.mustIn(l.Server, "ip", "tuntap", "add", "dev", "svpn0", "mode", "tun", "user", name)
	l.mustIn(l.Server, "ip", "addr", "add", serverV4+"/30", "dev", "svpn0")
	l.mustIn(l.Server, "ip", "link", "set", "svpn0", "up")
	l.setKeys(name, "--dev", "svpn0", "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30")

	sudoEnv := []string{"SUDO_UID=" + u.Uid, "SUDO_GID=" + u.Gid, "SUDO_USER=" + name, "HOME=/root"}
	run := func(args ...string) (*exec.Cmd, *syncBuffer, chan error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", l.Client, l.Bin, "-v"}, args...)...)
		cmd.Env = append(os.Environ(), sudoEnv...)
		out := new(syncBuffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			t.Logf("sshvpn %v:\n%s", args, out)
		})
		return cmd, out, done
	}
	for _, extra := range [][]string{nil, {"--native"}} {
		args := append(append([]string{"--addr", clientV4 + "/30", "--peer-addr", serverV4 + "/30", "--dev", "vpn0"}, extra...), "server")
		cmd, out, done := run(args...)
		if !eventually(20*time.Second, func() bool { return strings.Count(out.String(), "tunnel up") >= 2 }) {
			t.Fatalf("%v: no tunnel under sudo:\n%s", extra, out)
		}
		if extra == nil {
			ssh := childPID(t, cmd.Process.Pid, "ssh")
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
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			done <- err
		case <-time.After(10 * time.Second):
			t.Fatalf("%v: the client did not stop", extra)
		}
	}
	// root's own ssh setup knows no host "server".
	_, out, done := run("--as-root-ssh", "--addr", clientV4+"/30", "--peer-addr", serverV4+"/30", "server")
	select {
	case err := <-done:
		done <- err
		if err == nil || !strings.Contains(out.String(), "server") || strings.Contains(out.String(), "tunnel up") {
			t.Errorf("--as-root-ssh: exit %v:\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("--as-root-ssh: still running:\n%s", out)
	}
}
