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
// is removed; one whose file names another pid is ignored.
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
	if _, err := os.Stat(filepath.Join(dir, "session-1.json")); err != nil {
		t.Errorf("a live process's misfiled record was removed: %v", err)
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

// TestOpenExisting: root reads another account's registry, which that
// account owns, but not one that others could write to.
func TestOpenExisting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory of another account")
	}
	dir := filepath.Join(t.TempDir(), "sshvpn-65534")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenExisting(dir); err != nil {
		t.Errorf("another account's registry: %v", err)
	}
	os.Chmod(dir, 0o777)
	if _, err := OpenExisting(dir); err == nil {
		t.Error("a registry anyone can write to was accepted")
	}
}
