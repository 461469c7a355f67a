package registry

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/internal/netnstest"
	"github.com/sshvpn/sshvpn/internal/proc"
)

func TestAddListRemove(t *testing.T) {
	r, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Add(Record{Side: SideRemote, Dev: "tun0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.77.2/30")}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.List()
	if err != nil || len(recs) != 1 || recs[0].Dev != "tun0" || recs[0].PID != os.Getpid() {
		t.Fatalf("List = %+v, %v", recs, err)
	}
	if err := e.Update(func(rec *Record) { rec.Dev = "tun1" }); err != nil {
		t.Fatal(err)
	}
	if recs, _ := r.List(); len(recs) != 1 || recs[0].Dev != "tun1" {
		t.Fatalf("after Update: %+v", recs)
	}
	if err := e.Remove(); err != nil {
		t.Fatal(err)
	}
	if recs, _ := r.List(); len(recs) != 0 {
		t.Fatalf("after Remove: %+v", recs)
	}
	if err := e.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestStaleRecords: a record whose process has exited is not listed and
// is removed; so is one whose file names another pid (junk is not kept
// forever).
func TestStaleRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadStart := proc.StartTime(cmd.Process.Pid)
	if deadStart == "" {
		t.Fatal("no start time for a running process")
	}
	cmd.Wait()
	// A real process's start time: only its exit makes the record stale.
	dead := Record{Side: SideClient, PID: cmd.Process.Pid, Start: deadStart}
	b, _ := json.Marshal(dead)
	stale := filepath.Join(dir, "session-"+itoa(dead.PID)+".json")
	if err := os.WriteFile(stale, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// This process's record, but in a file that names another pid.
	me := Record{Side: SideClient, PID: os.Getpid(), Start: proc.Self().Start}
	b, _ = json.Marshal(me)
	if err := os.WriteFile(filepath.Join(dir, "session-1.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := r.ListAll()
	if err != nil || len(recs) != 0 {
		t.Fatalf("ListAll = %+v, %v; want nothing", recs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "session-1.json")); !os.IsNotExist(err) {
		t.Errorf("a misfiled record was left: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale record left: %v", err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCheckDir(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := Open(open); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable dir: %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(t.TempDir(), link)
	if _, err := Open(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlinked dir: %v", err)
	}
}

func TestLock(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := r.Lock()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := r.Lock()
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second Lock did not wait")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	<-got
}

// TestOpenOther: root reads another account's registry, which that
// account owns, but not one that others could write to, nor one of
// another owner (anyone can make a directory in /tmp).
func TestOpenOther(t *testing.T) {
	netnstest.NeedRoot(t, "files of another account")
	dir := filepath.Join(t.TempDir(), "sshvpn")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOther(dir, 65534); err != nil {
		t.Errorf("another account's registry: %v", err)
	}
	if _, err := OpenOther(dir, 1000); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("a directory of uid 65534 taken for uid 1000's: %v", err)
	}
	os.Chmod(dir, 0o777)
	if _, err := OpenOther(dir, 65534); err == nil {
		t.Error("a registry anyone can write to was accepted")
	}
}

// TestPlantedRecords: a record is trusted only where its file, its
// directory and its process all belong to the registry's account. Another
// account's directory holding a record of a root process (the attack on
// root's "sshvpn down") is not listed (root leaves that directory's files
// to its account); in root's own registry, a record file of another owner
// is neither listed nor kept.
func TestPlantedRecords(t *testing.T) {
	netnstest.NeedRoot(t, "files of another account")
	dir := filepath.Join(t.TempDir(), "sshvpn")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, 65534, 65534)
	// A live root process, named by a record that uid 65534 wrote.
	victim := exec.Command("sleep", "30")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { victim.Process.Kill(); victim.Wait() }()
	plant := func(dir string, owner int) string {
		t.Helper()
		rec := Record{Side: SideClient, PID: victim.Process.Pid, Start: proc.StartTime(victim.Process.Pid), Profile: "office"}
		b, _ := json.Marshal(rec)
		name := filepath.Join(dir, "session-"+itoa(rec.PID)+".json")
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chown(name, owner, owner)
		return name
	}
	name := plant(dir, 65534)
	r, err := OpenOther(dir, 65534)
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := r.ListAll(); err != nil || len(recs) != 0 {
		t.Errorf("another account's record of a root process listed: %+v, %v", recs, err)
	}
	if _, err := os.Stat(name); err != nil {
		t.Errorf("root removed a file in another account's registry: %v", err)
	}

	// Root's own registry: a record file that uid 65534 owns (it could
	// not have got there but through a mistake) is not root's word.
	own, err := Open(filepath.Join(t.TempDir(), "own"))
	if err != nil {
		t.Fatal(err)
	}
	name = plant(own.Dir(), 65534)
	if recs, _ := own.ListAll(); len(recs) != 0 {
		t.Errorf("a record file of another owner listed: %+v", recs)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("a record file of another owner was kept in root's own registry: %v", err)
	}
	// The same record written by root is root's.
	name = plant(own.Dir(), 0)
	if recs, _ := own.ListAll(); len(recs) != 1 || recs[0].Profile != "office" {
		t.Errorf("root's own record: %+v", recs)
	}
}

// TestPrivate: records are 0600 in a 0700 directory (they name keys,
// accounts and addresses), and a directory an older sshvpn made 0755 is
// tightened.
func TestPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Add(Record{Side: SideClient})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Remove()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %04o, want 0700", fi.Mode().Perm())
	}
	fi, err := os.Stat(e.file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	fresh := filepath.Join(t.TempDir(), "a", "b")
	if _, err := Open(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Errorf("new directory mode %04o, want 0700", fi.Mode().Perm())
	}
}

// TestJunkRemoved: a record that cannot be read as one (truncated, not
// JSON) is removed rather than ignored forever.
func TestJunkRemoved(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(r.Dir(), "session-"+itoa(os.Getpid())+".json")
	if err := os.WriteFile(junk, []byte(`{"side":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if recs, _ := r.ListAll(); len(recs) != 0 {
		t.Errorf("junk listed: %+v", recs)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("junk kept: %v", err)
	}
}
