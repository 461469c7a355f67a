package e2e

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
