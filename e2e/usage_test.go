package e2e

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/usage"
)

// usageOf reads "sshvpn usage --json" for the lab's state directory.
func (l *lab) usageOf(t *testing.T, dir string) []usage.Entry {
	t.Helper()
	out, err := exec.Command(l.Bin, "usage", "--json", "--state-dir", dir).Output()
	if err != nil {
		t.Fatalf("sshvpn usage: %v", err)
	}
	var es []usage.Entry
	if err := json.Unmarshal(out, &es); err != nil {
		t.Fatalf("sshvpn usage --json: %v: %s", err, out)
	}
	return es
}

// TestAccountingKill9: a key's totals outlive its sessions: a session
// killed outright (kill -9) keeps what it carried until its last refresh,
// and the next session adds its own, nothing counted twice.
func TestAccountingKill9(t *testing.T) {
	l := newLab(t)
	state := filepath.Join(l.dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	l.setKeys("root", slices.Concat(policyArgs, []string{"--state-dir", state})...)
	v := l.up(append(tunnelArgs, "--reconnect", "root@server")...)
	conn, srv := l.tcpPair(net.JoinHostPort(serverV4, "5301"))
	if sent, got := transfer(t, conn, srv, 3<<20, 21); sent != got {
		t.Fatal("checksum mismatch")
	}
	conn.Close()
	srv.Close()
	time.Sleep(2*time.Second + 500*time.Millisecond) // a refresh of the record, and of the accounting
	for _, pid := range l.pidsOf(l.Server, "sshvpn") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	es := l.usageOf(t, state)
	if len(es) != 1 || es[0].BytesIn < 3<<20 || es[0].Sessions != 1 || !strings.HasPrefix(es[0].Key, "SHA256:") {
		t.Fatalf("usage after kill -9: %+v", es)
	}
	// The client reconnects: a second session, which adds its own.
	l.waitUps(v, 2, 40*time.Second)
	conn, srv = l.tcpPair(net.JoinHostPort(serverV4, "5302"))
	if sent, got := transfer(t, conn, srv, 1<<20, 22); sent != got {
		t.Fatal("checksum mismatch")
	}
	conn.Close()
	srv.Close()
	if err, log := v.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
	if !eventually(10*time.Second, func() bool {
		es = l.usageOf(t, state)
		return len(es) == 1 && es[0].Sessions == 2 && es[0].BytesIn >= 4<<20
	}) {
		t.Fatalf("usage after a second session: %+v", es)
	}
	if es[0].BytesIn > 6<<20 {
		t.Errorf("%d bytes in for 4 MiB sent: counted twice?", es[0].BytesIn)
	}
}

// TestQuota: a key with --quota 2MB/1d: a session that moves more is
// ended, the client told why in one line, and a new session is refused
// until the period renews.
func TestQuota(t *testing.T) {
	l := newLab(t)
	state := filepath.Join(l.dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	l.setKeys("root", slices.Concat(policyArgs, []string{"--state-dir", state, "--quota", "2MB/1d"})...)
	v := l.up(append(tunnelArgs, "root@server")...)
	conn, srv := l.tcpPair(net.JoinHostPort(serverV4, "5303"))
	// 8 MB at 1 MB/s: the quota runs out on the way, and the writes
	// fail then (no checksum here).
	go func() {
		w, buf := &slowWriter{w: conn, rate: 1 << 20}, make([]byte, 32<<10)
		for range 256 {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}()
	go io.Copy(io.Discard, srv)
	err, log := v.wait(t, 30*time.Second)
	conn.Close()
	srv.Close()
	if err == nil || !strings.Contains(lastLine(log), "the quota of this key, 2MB/1d, is spent") {
		t.Fatalf("the session over its quota: exit %v, last line %q", err, lastLine(log))
	}
	v = l.start(append(tunnelArgs, "root@server")...)
	if err, log := v.wait(t, 30*time.Second); err == nil || !strings.Contains(lastLine(log), "is spent") || !strings.Contains(lastLine(log), "renews on") {
		t.Errorf("a new session of a spent key: exit %v, last line %q", err, lastLine(log))
	}
	if es := l.usageOf(t, state); len(es) != 1 || es[0].PeriodBytes < 2e6 {
		t.Errorf("usage: %+v", es)
	}
}
