package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tunnel"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

// older is another live session in the registry: a process of this
// account (a sleep, which SIGUSR2 ends as it ends a session) and its
// record, as that session would have written it.
type older struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var seq int

func startOlder(t *testing.T, reg *registry.Registry, rec registry.Record) *older {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := &older{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(o.done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-o.done })
	pid := cmd.Process.Pid
	for proc.StartTime(pid) == "" {
		time.Sleep(time.Millisecond)
	}
	// Older than this process's record, and in the order they start.
	seq++
	rec.PID, rec.Start, rec.NetNS = pid, proc.StartTime(pid), proc.NetNS()
	rec.Started = time.Now().UTC().Truncate(time.Second).Add(time.Duration(seq)*time.Second - time.Hour)
	if rec.Side == "" {
		rec.Side = registry.SideRemote
	}
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(reg.Dir(), fmt.Sprintf("session-%d.json", pid)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}

// ended reports whether the older session's process has ended (and been
// reaped) now.
func (o *older) ended() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// endedSoon reports whether it ends within a few seconds: admission
// returns once the process is gone, a moment before its reaper says so.
func (o *older) endedSoon() bool {
	select {
	case <-o.done:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

func newAdmission(t *testing.T, key string) *admission {
	reg, err := registry.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return &admission{reg: reg, id: Identity{ID: key, User: "alice"}, wait: 5 * time.Second, log: slog.New(slog.DiscardHandler)}
}

// The tunnel addresses of the tests: benchmark ranges no host has.
var (
	tunA = tunnel.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.77.1/30"), PeerAddrs: pfx("198.18.77.2/30")}
	tunB = tunnel.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.78.1/30"), PeerAddrs: pfx("198.18.78.2/30")}
)

// TestAdmissionCollisions: what another live session holds (its addresses,
// its device, networks its routes cover) is refused, and the refusal says
// whose it is; what nobody holds is taken and recorded.
func TestAdmissionCollisions(t *testing.T) {
	a := newAdmission(t, "SHA256:alice")
	startOlder(t, a.reg, registry.Record{Key: "SHA256:bob", Dev: "tun7", Addrs: tunA.Addrs, PeerAddrs: tunA.PeerAddrs,
		Routes: pfx("203.0.113.0/24")})
	for _, tt := range []struct {
		name string
		t    tunnel.Tunnel
		dev  string
		want string
	}{
		{"the same addresses", tunA, "", "address 198.18.77.1/30 is in use by another sshvpn session on tun7 (of another key)"},
		{"the same device", tunB, "tun7", "device tun7 is in use by another sshvpn session on tun7 (of another key)"},
		{"a route over another's", func() tunnel.Tunnel { x := tunB; x.Routes = pfx("203.0.113.128/25"); return x }(), "",
			"the route 203.0.113.128/25 (it overlaps 203.0.113.0/24) is in use by another sshvpn session"},
	} {
		if _, err := a.take(tt.t, tt.dev, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	e, err := a.take(tunB, "tun8", 0)
	if err != nil {
		t.Fatalf("free addresses and device: %v", err)
	}
	defer e.Remove()
	recs, _ := a.reg.List()
	if len(recs) != 2 || recs[1].PID != os.Getpid() || recs[1].Key != "SHA256:alice" || recs[1].Dev != "tun8" || recs[0].Key != "SHA256:bob" {
		t.Errorf("records %+v, want the older session's and this one's", recs)
	}
}

// TestAdmissionOneSessionPerKey: a fixed-address key's second session is
// refused with the reason; with --replace the older one is told to end
// (and does), and the new one takes its place.
func TestAdmissionOneSessionPerKey(t *testing.T) {
	a := newAdmission(t, "SHA256:alice")
	old := startOlder(t, a.reg, registry.Record{Key: "SHA256:alice", Addrs: tunA.Addrs, PeerAddrs: tunA.PeerAddrs})
	if _, err := a.take(tunA, "", 0); err == nil || !strings.Contains(err.Error(), "this key allows one session at a time") {
		t.Errorf("a second session of the key: %v", err)
	}
	if old.ended() {
		t.Fatal("a refusal ended the older session")
	}
	a.replace = true
	e, err := a.take(tunA, "", 0)
	if err != nil {
		t.Fatalf("with --replace: %v", err)
	}
	defer e.Remove()
	if !old.endedSoon() {
		t.Error("--replace did not end the older session")
	}
	b, err := os.ReadFile(endedFile(a.reg.Dir(), old.cmd.Process.Pid))
	if err != nil || string(b) != "replaced" {
		t.Errorf("the older session is told %q (%v), want replaced", b, err)
	}
}

// TestAdmissionResume: the same client coming back (the same resume
// token, under the same key) takes over from its older session before it
// claims anything; the same token under another key does not.
func TestAdmissionResume(t *testing.T) {
	a := newAdmission(t, "SHA256:alice")
	token := tokenHash("0123456789abcdef0123456789abcdef")
	mine := startOlder(t, a.reg, registry.Record{Key: "SHA256:alice", Resume: token, Addrs: tunA.Addrs, PeerAddrs: tunA.PeerAddrs})
	theirs := startOlder(t, a.reg, registry.Record{Key: "SHA256:bob", Resume: token, Addrs: tunB.Addrs, PeerAddrs: tunB.PeerAddrs})
	a.resume = token
	if err := a.resumeOld(); err != nil {
		t.Fatal(err)
	}
	if !mine.endedSoon() {
		t.Error("the client's older session was not taken over")
	}
	if theirs.ended() {
		t.Error("another key's session with the same token was ended")
	}
	if b, _ := os.ReadFile(endedFile(a.reg.Dir(), mine.cmd.Process.Pid)); string(b) != "resumed" {
		t.Errorf("the older session is told %q, want resumed", b)
	}
	e, err := a.take(tunA, "", 0)
	if err != nil {
		t.Fatalf("after the takeover: %v", err)
	}
	defer e.Remove()
	// The record keeps the token's hash, never the token.
	rec, _ := a.reg.List()
	for _, r := range rec {
		if r.PID == os.Getpid() && (r.Resume != token || strings.Contains(r.Resume, "0123456789abcdef0123")) {
			t.Errorf("the record keeps resume %q, want the hash %q", r.Resume, token)
		}
	}
}

// TestAdmissionMaxSessions: --max-sessions counts the key's live sessions
// (pooled sessions share the server's address on purpose); with
// --replace the oldest makes room.
func TestAdmissionMaxSessions(t *testing.T) {
	a := newAdmission(t, "SHA256:alice")
	a.max = 2
	first := startOlder(t, a.reg, registry.Record{Key: "SHA256:alice", Lease: 1, Addrs: pfx("198.18.8.1/32"), PeerAddrs: pfx("198.18.8.2/32")})
	startOlder(t, a.reg, registry.Record{Key: "SHA256:alice", Lease: 2, Addrs: pfx("198.18.8.1/32"), PeerAddrs: pfx("198.18.8.3/32")})
	startOlder(t, a.reg, registry.Record{Key: "SHA256:bob", Lease: 3, Addrs: pfx("198.18.8.1/32"), PeerAddrs: pfx("198.18.8.4/32")})
	pooled := tunnel.Tunnel{Mode: "tun", MTU: 1500, Addrs: pfx("198.18.8.1/32"), PeerAddrs: pfx("198.18.8.5/32")}
	if _, err := a.take(pooled, "", 4); err == nil || !strings.Contains(err.Error(), "this key allows 2 sessions at a time (the server's --max-sessions), and 2 are running") {
		t.Errorf("a third session of the key: %v", err)
	}
	a.replace = true
	e, err := a.take(pooled, "", 4)
	if err != nil {
		t.Fatalf("with --replace: %v", err)
	}
	defer e.Remove()
	if !first.endedSoon() {
		t.Error("--replace did not end the oldest session of the key")
	}
}
