package e2e

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpload: --upload copies this sshvpn into the account's
// ~/.cache/sshvpn on a server and runs that copy, which serves the tunnel;
// the next run finds the copy there and does not copy again, nor does
// --native, which checks over its own connection; a binary for another
// architecture is refused with the reason.
func TestUpload(t *testing.T) {
	user := userName()
	l := newLab(t, "LAB_USER="+user)
	l.userDevice(user)
	args := []string{"--upload", "--remote-cmd", "/opt/no-such/sshvpn --remote --dev svpn0 --addr " + serverV4 + "/30 --peer-addr " + clientV4 + "/30",
		"--addr", clientV4 + "/30", "--peer-addr", serverV4 + "/30", user + "@server"}
	cache := filepath.Join(l.dir, "home", user, ".cache", "sshvpn")

	v := l.up(args...)
	if !strings.Contains(v.log.String(), "copied sshvpn to the server") {
		t.Errorf("no copy reported:\n%s", v.log)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	// The remote's process is the copy (its name is sshvpn-VERSION).
	var exe string
	out, _ := exec.Command("ip", "netns", "pids", l.Server).Output()
	for _, pid := range strings.Fields(string(out)) {
		if e, _ := os.Readlink(filepath.Join("/proc", pid, "exe")); strings.HasPrefix(e, cache+"/sshvpn-") {
			exe = e
		}
	}
	if exe == "" || len(l.pidsOf(l.Server, "sshvpn")) != 0 {
		t.Fatalf("no remote process runs the copy in %s (sshvpn: %v)", cache, l.pidsOf(l.Server, "sshvpn"))
	}
	mine, _ := os.ReadFile(l.Bin)
	theirs, _ := os.ReadFile(exe)
	if len(mine) == 0 || string(mine) != string(theirs) {
		t.Errorf("the copy (%d bytes) differs from the client's binary (%d bytes)", len(theirs), len(mine))
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}

	v = l.up(args...)
	if log := v.log.String(); strings.Contains(log, "copied sshvpn") || !strings.Contains(log, "has this sshvpn already") {
		t.Errorf("second run copied again or did not say why not:\n%s", log)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}

	// --native checks the copy over its own connection.
	v = l.up(append([]string{"--native", "-F", l.SSHConfig}, args...)...)
	if log := v.log.String(); strings.Contains(log, "copied sshvpn") || !strings.Contains(log, "has this sshvpn already") {
		t.Errorf("--native --upload copied again or did not check:\n%s", log)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}

	// A build for another architecture (its ELF header says so) is not
	// for this server, which is of this machine's.
	other, machine := "arm64", elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		other, machine = "amd64", elf.EM_X86_64
	}
	foreign := filepath.Join(l.dir, "sshvpn-"+other)
	b := append([]byte(nil), mine...)
	b[18], b[19] = byte(machine), byte(machine>>8) // e_machine (amd64 and arm64 are little-endian)
	if err := os.WriteFile(foreign, b, 0o755); err != nil {
		t.Fatal(err)
	}
	v = l.start(append([]string{"--upload-binary", foreign}, args...)...)
	err, log := v.wait(t, 30e9)
	if last := lastLine(log); err == nil || !strings.Contains(last, other) || !strings.Contains(last, runtime.GOARCH) {
		t.Errorf("upload of a %s build: exit %v, last line %q", other, err, last)
	}
}

// uploadArgs are the arguments of a client that uploads sshvpn to account
// user, which has the server's svpn0.
func uploadArgs(user string) []string {
	return []string{"--upload", "--remote-cmd", "sshvpn --remote --dev svpn0 --addr " + serverV4 + "/30 --peer-addr " + clientV4 + "/30",
		"--addr", clientV4 + "/30", "--peer-addr", serverV4 + "/30", user + "@server"}
}

// labUser returns the home and uid of account name, made by lab.sh.
func (l *lab) labUser(name string) (home string, uid int) {
	l.t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		l.t.Fatal(err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		l.t.Fatal(err)
	}
	return u.HomeDir, uid
}

// TestUploadUnsafeDir: --upload refuses a ~/.cache/sshvpn on the server
// that another account could change things in (a symbolic link to its 0777
// directory, a directory it owns, one that others may write to), saying
// what is wrong and what to do, and copies nothing; with the ssh binary and
// with --native.
func TestUploadUnsafeDir(t *testing.T) {
	const nobody = 65534
	name := userName()
	l := newLab(t, "LAB_USER="+name)
	l.userDevice(name)
	home, uid := l.labUser(name)
	cache := filepath.Join(home, ".cache")
	dir := filepath.Join(cache, "sshvpn")
	// Another account's directory, open to all, outside the home.
	evil := filepath.Join(l.dir, "evil")
	for _, c := range [][]string{{"mkdir", "-p", cache}, {"chown", name, cache}, {"chmod", "700", cache},
		{"mkdir", evil}, {"chown", strconv.Itoa(nobody), evil}, {"chmod", "777", evil}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v %s", c, err, out)
		}
	}
	for _, tc := range []struct {
		name   string
		native bool
		plant  []string // a command that makes dir
		want   string
	}{
		{"a symbolic link to another account's 0777 directory", false, []string{"ln", "-s", evil, dir},
			"upload: the directory " + dir + " on the server is a symbolic link, which sshvpn does not follow for its copy: remove the link (sshvpn then creates the directory, mode 0700)"},
		{"the same with --native", true, []string{"ln", "-s", evil, dir},
			"upload: the directory " + dir + " on the server is a symbolic link, which sshvpn does not follow for its copy: remove the link (sshvpn then creates the directory, mode 0700)"},
		{"another account's directory", false, []string{"install", "-d", "-o", strconv.Itoa(nobody), "-m", "755", dir},
			fmt.Sprintf("upload: the directory %s on the server belongs to uid %d, not to uid %d that sshvpn logs in as: remove it, as root if need be (sshvpn then creates it, mode 0700)", dir, nobody, uid)},
		{"a directory others may write to", false, []string{"install", "-d", "-o", name, "-m", "777", dir},
			"upload: the directory " + dir + " on the server is writable by others than its owner (drwxrwxrwx): remove it, with whatever others may have put in it (sshvpn then creates it, mode 0700)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := exec.Command(tc.plant[0], tc.plant[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%q: %v %s", tc.plant, err, out)
			}
			defer os.RemoveAll(dir)
			args := uploadArgs(name)
			if tc.native {
				args = append([]string{"--native", "-F", l.SSHConfig}, args...)
			}
			v := l.start(args...)
			if !eventually(20*time.Second, func() bool { return isDone(v) }) {
				v.stop(t)
				t.Fatalf("the client still runs after 20s: it used %s:\n%s", dir, v.log)
			}
			err, log := v.wait(t, time.Second) // it has exited
			if err == nil || !strings.Contains(lastLine(log), tc.want) {
				t.Errorf("exit %v, last line %q\nwant it to say: %s", err, lastLine(log), tc.want)
			}
			for _, d := range []string{evil, dir} {
				if ents, _ := os.ReadDir(d); len(ents) != 0 {
					t.Errorf("%s has %s, want nothing copied", d, ents[0].Name())
				}
			}
		})
	}
}

// TestUploadSwappedCopy: a copy replaced on the server after the upload is
// not run. The ssh binary's reconnection checks it and refuses, saying why
// (it runs the remote command as it was, without uploading again); a new
// client copies it afresh, and so does --native on reconnecting, which
// uploads over each connection.
func TestUploadSwappedCopy(t *testing.T) {
	name := userName()
	l := newLab(t, "LAB_USER="+name)
	l.userDevice(name)
	home, _ := l.labUser(name)
	args := append(uploadArgs(name), "--reconnect")
	copyPath := filepath.Join(home, ".cache", "sshvpn", "sshvpn-dev")
	ran := filepath.Join(home, "the-swapped-copy-ran")
	// swap puts a script in place of the copy that leaves a mark and then
	// serves the tunnel all the same, as a tampered binary would.
	swap := func() {
		t.Helper()
		tmp := copyPath + ".swap"
		script := "#!/bin/sh\ntouch " + ran + "\nexec " + l.Bin + " \"$@\"\n"
		if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("chown", name, tmp).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
		if err := os.Rename(tmp, copyPath); err != nil {
			t.Fatal(err)
		}
	}
	sameAsClient := func() bool {
		mine, _ := os.ReadFile(l.Bin)
		theirs, _ := os.ReadFile(copyPath)
		return len(mine) != 0 && string(mine) == string(theirs)
	}

	// The ssh binary: the reconnection refuses the swapped copy.
	v := l.up(args...)
	swap()
	v.cmd.Process.Signal(syscall.SIGHUP) // reconnect now
	eventually(20*time.Second, func() bool {
		_, err := os.Stat(ran)
		return isDone(v) || err == nil || upCount(v) >= 2
	})
	if _, err := os.Stat(ran); err == nil {
		t.Fatalf("the reconnection ran the swapped copy:\n%s", v.log)
	}
	err, log := v.wait(t, 10*time.Second)
	want := "sshvpn --upload: " + copyPath + " on the server is not the copy of sshvpn uploaded there ("
	if err == nil || !strings.Contains(log, want) || !strings.Contains(log, "start sshvpn again to upload it afresh") {
		t.Errorf("the client after the copy was swapped: exit %v; want it to stop, saying %q...:\n%s", err, want, log)
	}

	// A new client copies it afresh.
	v = l.up(args...)
	if !strings.Contains(v.log.String(), "copied sshvpn to the server") || !sameAsClient() {
		t.Errorf("a new client did not copy sshvpn afresh:\n%s", v.log)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}

	// --native checks, and copies, over each connection.
	v = l.up(append([]string{"--native", "-F", l.SSHConfig}, args...)...)
	swap()
	v.cmd.Process.Signal(syscall.SIGHUP)
	l.waitUps(v, 2, 20*time.Second)
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("--native's reconnection ran the swapped copy:\n%s", v.log)
	}
	if log := v.log.String(); !strings.Contains(log[max(0, strings.Index(log, "reconnecting")):], "copied sshvpn to the server") || !sameAsClient() {
		t.Errorf("--native's reconnection did not copy sshvpn afresh:\n%s", v.log)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
}

// isDone says whether the client has exited.
func isDone(v *vpn) bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}
