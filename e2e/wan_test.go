package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWAN: over the lab's emulated WAN (a long, lossy, narrow link of the
// project's own emulator instead of the veth), sshvpn with both transports
// carries 20 MB each way with matching checksums, and the emulator did
// what its profile says: it delayed, and it lost packets that the outer
// TCP then repaired.
func TestWAN(t *testing.T) {
	l := newLab(t, "LAB_WAN=delay=10ms loss=1% rate=200mbit queue=50ms")
	// The link itself: a round trip of at least twice the delay.
	out, err := l.in(l.Client, "ping", "-c", "3", "-i", "0.2", "-W", "2", l.env["LAB_SERVER_ADDR"])
	if err != nil {
		t.Fatalf("no ping over the emulated link: %v\n%s", err, out)
	}
	if rtt := pingRTT(t, out); rtt < 20*time.Millisecond {
		t.Errorf("round trip %v over a link of 10 ms each way", rtt)
	}
	for _, args := range [][]string{append(tunnelArgs, "root@server"), l.nativeArgs("root@server")} {
		v := l.up(args...)
		l.transferBothWays(serverV4, 20<<20)
		err, log := v.stop(t)
		if err != nil {
			t.Errorf("exit %v:\n%s", err, log)
		}
		// Each side's pacer read the outer TCP connection's
		// retransmissions (ssh's socket, or --native's, and sshd's) and
		// stepped aside: on this path, the stalls of its repairs set
		// the latency, not the queue.
		if n := strings.Count(log, `msg="the outer TCP connection retransmits`); n < 2 {
			t.Errorf("%v: %d pacers saw the outer connection retransmit, want both:\n%s", args, n, log)
		}
	}
	// The emulator's counters, on SIGUSR1.
	pid := l.env["LAB_WAN_PID"]
	p, err := os.FindProcess(atoi(t, pid))
	if err != nil || p.Signal(syscall.SIGUSR1) != nil {
		t.Fatalf("no emulator at pid %q", pid)
	}
	var st struct {
		Up, Down struct{ Packets, Lost uint64 }
	}
	if !eventually(5*time.Second, func() bool {
		b, err := os.ReadFile(l.env["LAB_WAN_STATS"])
		return err == nil && json.Unmarshal(b, &st) == nil && st.Up.Packets > 0
	}) {
		t.Fatal("the emulator wrote no counters")
	}
	for dir, s := range map[string]struct{ Packets, Lost uint64 }{"up": st.Up, "down": st.Down} {
		if s.Lost == 0 || s.Lost*1000 < s.Packets*5 || s.Lost*1000 > s.Packets*15 {
			t.Errorf("%s: %d of %d packets lost at 1%%", dir, s.Lost, s.Packets)
		}
	}
}

// pingRTT is the average round trip ping printed.
func pingRTT(t *testing.T, out string) time.Duration {
	t.Helper()
	i := strings.Index(out, "rtt min/avg/max/mdev = ")
	if i < 0 {
		t.Fatalf("no round trip in %q", out)
	}
	f := strings.Split(strings.Fields(out[i+len("rtt min/avg/max/mdev = "):])[0], "/")
	ms, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		t.Fatalf("round trip %q: %v", f[1], err)
	}
	return time.Duration(ms * float64(time.Millisecond))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
