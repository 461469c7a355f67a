package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/registry"
)

// nobody is the account that plays the other local user.
const nobody = 65534

// asNobody runs a shell command as uid 65534.
func asNobody(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d: %s: %v\n%s", nobody, script, err, out)
	}
}

// madeDir creates dir (and missing parents) for the test and removes what
// it created at the end.
func madeDir(t *testing.T, dir string, uid int) {
	t.Helper()
	if _, err := os.Lstat(dir); err == nil {
		t.Fatalf("%s exists already; remove it to run this test", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, uid, uid)
	t.Cleanup(func() { os.RemoveAll(dir) })
}

// reap waits for cmd in the background: a process that is signalled
// leaves no zombie that would still look alive.
func reap(cmd *exec.Cmd) <-chan struct{} {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return done
}

// publicBinary is a copy of the sshvpn binary that other accounts can run
// (the tests' own is in a private directory).
func publicBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sshvpn-trust-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sshvpn")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// recordJSON is a session record naming process pid, as anyone can write
// one.
func recordJSON(pid int, profile string) string {
	b, _ := json.Marshal(registry.Record{Side: registry.SideClient, PID: pid, Start: proc.StartTime(pid), NetNS: proc.NetNS(),
		Started: time.Now().UTC(), Profile: profile})
	return string(b)
}

// TestPlantedRecords: another local account cannot make root's "sshvpn
// down" signal a process or root's "sshvpn status" list a session: not
// through a directory in /tmp that anyone can create (where sshvpn no
// longer looks), and not through its own registry either, whose records
// count only for that account's own processes. Root still sees and ends
// that account's real sessions, through their own records.
func TestPlantedRecords(t *testing.T) {
	requirePrereqs(t)
	victim := exec.Command("sleep", "120") // a root process
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	victimDone := reap(victim)
	defer func() { victim.Process.Kill(); <-victimDone }()
	pid := victim.Process.Pid

	// The attack of the probe: a directory in /tmp that uid 65534 made.
	tmp := fmt.Sprintf("/tmp/sshvpn-%d", nobody)
	if _, err := os.Lstat(tmp); err == nil {
		t.Fatalf("%s exists already; remove it to run this test", tmp)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	asNobody(t, fmt.Sprintf("mkdir -m755 %s && printf '%%s' '%s' > %s/session-%d.json", tmp, recordJSON(pid, "office"), tmp, pid))

	// The account's own registry (/run/user/UID/sshvpn): a record of a
	// root process, and one of a process of its own.
	run := fmt.Sprintf("/run/user/%d", nobody)
	madeDir(t, run, nobody)
	own := exec.Command("sleep", "120")
	own.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	ownDone := reap(own)
	defer func() { own.Process.Kill(); <-ownDone }()
	asNobody(t, fmt.Sprintf("mkdir -m700 %[1]s/sshvpn && printf '%%s' '%[2]s' > %[1]s/sshvpn/session-%[3]d.json && printf '%%s' '%[4]s' > %[1]s/sshvpn/session-%[5]d.json",
		run, recordJSON(pid, "office"), pid, recordJSON(own.Process.Pid, "mine"), own.Process.Pid))

	out, err := exec.Command(binary, "down", "--timeout", "2s", "office").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no tunnel of profile office is running") {
		t.Errorf("root's sshvpn down office: %v\n%s", err, out)
	}
	select {
	case <-victimDone:
		t.Fatal("root's sshvpn down killed a root process that another account named")
	default:
	}
	st, err := exec.Command(binary, "status", "--all", "--json").Output()
	if err != nil {
		t.Fatalf("sshvpn status: %v", err)
	}
	var recs []registry.Record
	if err := json.Unmarshal(st, &recs); err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, r := range recs {
		if r.PID == pid {
			t.Errorf("status lists the planted session %+v", r)
		}
		seen = seen || r.PID == own.Process.Pid
	}
	if !seen {
		t.Errorf("root's status does not list uid %d's own session:\n%s", nobody, st)
	}
	// A session of root's own (this test's process, recorded where
	// root's sessions are): root's status lists it, the account's not.
	rootReg, err := registry.Open(registry.DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := rootReg.Add(registry.Record{Side: registry.SideClient, Profile: "root-only"})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Remove()
	if out, err := exec.Command(binary, "status", "--all").CombinedOutput(); err != nil || !strings.Contains(string(out), "root-only") {
		t.Errorf("root's status does not list root's session: %v\n%s", err, out)
	}
	// The account's own listing shows its own session, not root's, and
	// removes the lie from its registry.
	status := exec.Command(publicBinary(t), "status", "--all")
	status.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	status.Env = []string{"HOME=/nonexistent", "PATH=" + os.Getenv("PATH")}
	if out, err := status.CombinedOutput(); err != nil || strings.Contains(string(out), "root-only") || !strings.Contains(string(out), "profile mine") {
		t.Errorf("sshvpn status as uid %d: %v\n%s", nobody, err, out)
	}
	if _, err := os.Stat(filepath.Join(run, "sshvpn", fmt.Sprintf("session-%d.json", pid))); !os.IsNotExist(err) {
		t.Errorf("the planted record was kept: %v", err)
	}
	// Root ends the account's real session through its own record.
	if out, err := exec.Command(binary, "down", "--timeout", "5s", "mine").CombinedOutput(); err != nil {
		t.Errorf("root's sshvpn down mine: %v\n%s", err, out)
	}
	select {
	case <-ownDone:
	case <-time.After(5 * time.Second):
		t.Error("the account's session was not ended")
	}
}

// TestStateNotInTmp: an unprivileged account's registry is never a name in
// /tmp that another user could take first (item 9 of the probe): with no
// /run/user/UID it lives under the account's home, 0700.
func TestStateNotInTmp(t *testing.T) {
	requirePrereqs(t)
	bin := publicBinary(t)
	home := filepath.Join(filepath.Dir(bin), "home")
	madeDir(t, home, nobody)
	// Another user took /tmp/sshvpn-65534 first, as a directory of its own.
	tmp := fmt.Sprintf("/tmp/sshvpn-%d", nobody)
	if _, err := os.Lstat(tmp); err == nil {
		t.Fatalf("%s exists already; remove it to run this test", tmp)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if _, err := os.Lstat(fmt.Sprintf("/run/user/%d", nobody)); err == nil {
		t.Fatalf("/run/user/%d exists; this test wants an account without it", nobody)
	}
	cmd := exec.Command(bin, "status", "--all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no sshvpn tunnels are running") {
		t.Errorf("sshvpn status as uid %d: %v\n%s", nobody, err, out)
	}
	// A session's registry: "sshvpn --remote" opens it first thing, and
	// refuses a terminal after; stdin from /dev/null is not one.
	cmd = exec.Command(bin, "--remote", "--addr", "198.18.0.1/30", "--peer-addr", "198.18.0.2/30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	out, _ = cmd.CombinedOutput()
	fi, err := os.Stat(filepath.Join(home, ".local/state/sshvpn"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("no private registry under the account's home (%v, %v):\n%s", fi, err, out)
	}
	if strings.Contains(string(out), tmp) {
		t.Errorf("the session used %s:\n%s", tmp, out)
	}
}
