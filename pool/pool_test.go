package pool

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

func TestAcquireRelease(t *testing.T) {
	p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/29"), netip.MustParsePrefix("fd00:8::/64")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != 5 {
		t.Fatalf("size %d, want 5 (8 addresses less network, server, broadcast)", p.Size())
	}
	var leases []*Lease
	for i := range 5 {
		l, err := p.Acquire()
		if err != nil {
			t.Fatalf("lease %d: %v", i, err)
		}
		leases = append(leases, l)
	}
	if got, want := leases[0].Server[0].String(), "198.18.8.1/29"; got != want {
		t.Errorf("server %s, want %s", got, want)
	}
	if got, want := leases[4].Client[0].String(), "198.18.8.6/29"; got != want {
		t.Errorf("last client %s, want %s", got, want)
	}
	if got, want := leases[1].Client[1].String(), "fd00:8::3/64"; got != want {
		t.Errorf("v6 client %s, want %s", got, want)
	}
	if _, err := p.Acquire(); !errors.Is(err, ErrFull) {
		t.Fatalf("sixth lease: %v, want ErrFull", err)
	}
	leases[2].Release()
	l, err := p.Acquire()
	if err != nil || l.Index != 2 {
		t.Fatalf("after release got %+v, %v; want index 2", l, err)
	}
}

func TestConcurrentLeasesAreDistinct(t *testing.T) {
	p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			l, err := p.Acquire()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[l.Index] {
				t.Errorf("lease %d handed out twice", l.Index)
			}
			seen[l.Index] = true
		})
	}
	wg.Wait()
}

// TestDeadHolderFreesLease: a lease held by a process that died is reused.
func TestDeadHolderFreesLease(t *testing.T) {
	dir := t.TempDir()
	p, err := New(dir, []netip.Prefix{netip.MustParsePrefix("198.18.8.0/30")})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	l := p.lease(0, "")
	// A lease written by a process that has exited.
	file := dir + "/lease-" + p.key + "-0"
	if err := os.WriteFile(file, []byte(strconv.Itoa(cmd.Process.Pid)+" 12345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := p.Acquire()
	if err != nil {
		t.Fatalf("stale lease not reclaimed: %v", err)
	}
	if got.Client[0] != l.Client[0] {
		t.Errorf("got %v, want %v", got.Client, l.Client)
	}
	// Held by us, it is not handed out again.
	if _, err := p.Acquire(); !errors.Is(err, ErrFull) {
		t.Errorf("live lease handed out again: %v", err)
	}
}

func TestTooSmall(t *testing.T) {
	if _, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/31")}); err == nil {
		t.Error("a /31 pool was accepted")
	}
}
