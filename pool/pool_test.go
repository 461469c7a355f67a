package pool

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sshvpn/sshvpn/internal/netnstest"
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

func leasePath(p *Pool, i int) string {
	return filepath.Join(p.dir, "lease-"+p.key+"-"+strconv.Itoa(i))
}

// TestSymlinkedLeaseRefused: a symbolic link planted as a lease file (or as
// the lock file) is an error, and its target is neither written nor created.
func TestSymlinkedLeaseRefused(t *testing.T) {
	for _, name := range []string{"lease", "lock"} {
		t.Run(name, func(t *testing.T) {
			p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/29")})
			if err != nil {
				t.Fatal(err)
			}
			link := leasePath(p, 0)
			if name == "lock" {
				link = filepath.Join(p.dir, "pool.lock")
			}
			outside := t.TempDir()
			target := filepath.Join(outside, "precious")
			if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			dangling := filepath.Join(outside, "absent")
			if name == "lease" {
				if err := os.Symlink(dangling, leasePath(p, 1)); err != nil {
					t.Fatal(err)
				}
			}
			l, err := p.Acquire()
			if err == nil {
				t.Fatalf("Acquire through a symlinked %s file gave lease %d", name, l.Index)
			}
			if !strings.Contains(err.Error(), link) {
				t.Errorf("error %q does not name %s", err, link)
			}
			if b, err := os.ReadFile(target); err != nil || string(b) != "precious\n" {
				t.Errorf("symlink target now %q, %v", b, err)
			}
			if name == "lease" {
				// Lease 0 fails first; remove it, take lease 0, and the
				// dangling link at lease 1 fails too.
				if err := os.Remove(link); err != nil {
					t.Fatal(err)
				}
				if l, err := p.Acquire(); err != nil || l.Index != 0 {
					t.Fatalf("after removing the link got %+v, %v; want lease 0", l, err)
				}
				if _, err := p.Acquire(); err == nil || !strings.Contains(err.Error(), leasePath(p, 1)) {
					t.Errorf("dangling symlinked lease: %v", err)
				}
				if _, err := os.Lstat(dangling); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("dangling symlink target created: %v", err)
				}
			}
		})
	}
}

func TestUnsafeStateDirRefused(t *testing.T) {
	prefixes := []netip.Prefix{netip.MustParsePrefix("198.18.8.0/29")}
	t.Run("symlink", func(t *testing.T) {
		real := t.TempDir()
		link := filepath.Join(t.TempDir(), "state")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if _, err := New(link, prefixes); err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("symlinked state dir: %v", err)
		}
	})
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702, 0o1777} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			_, err := New(dir, prefixes)
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "writable by others") || !strings.Contains(err.Error(), "--state-dir") {
				t.Errorf("state dir mode %04o: %v", mode, err)
			}
		})
	}
	t.Run("0755", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := New(dir, prefixes); err != nil {
			t.Errorf("state dir mode 0755: %v", err)
		}
	})
	t.Run("owner", func(t *testing.T) {
		netnstest.NeedRoot(t, "a directory of another account")
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := New(dir, prefixes); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
			t.Errorf("state dir of another user: %v", err)
		}
	})
}

// TestUnreadableLeaseHeld: a lease file that exists but cannot be read is
// held, not free; with every lease so, the pool is full. (A mode 000 file
// is unreadable too, but not to root, which runs these tests in CI.)
func TestUnreadableLeaseHeld(t *testing.T) {
	type plant func(t *testing.T, path string)
	cases := map[string]plant{
		"directory": func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		},
		"fifo": func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, plant := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/29")})
			if err != nil {
				t.Fatal(err)
			}
			plant(t, leasePath(p, 0))
			l, err := p.Acquire()
			if err != nil {
				t.Fatal(err)
			}
			if l.Index != 1 {
				t.Errorf("got lease %d, want 1 (0 is unreadable, so held)", l.Index)
			}

			// A one-lease pool whose only lease is unreadable is full.
			p, err = New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/30")})
			if err != nil {
				t.Fatal(err)
			}
			plant(t, leasePath(p, 0))
			if _, err := p.Acquire(); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "unreadable") {
				t.Errorf("only lease unreadable: %v, want ErrFull naming it", err)
			}
		})
	}
}

// TestOversizedLeaseFreed: only the start of a lease file is read; an
// oversized one holds no valid record and is taken over.
func TestOversizedLeaseFreed(t *testing.T) {
	p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/30")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leasePath(p, 0), bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := p.Acquire()
	if err != nil || l.Index != 0 {
		t.Fatalf("got %+v, %v; want lease 0", l, err)
	}
	b, err := os.ReadFile(leasePath(p, 0))
	if err != nil || string(b) != holder(os.Getpid()) {
		t.Errorf("lease file now %.80q, %v; want our record", b, err)
	}
}

func TestFullMessageGrammar(t *testing.T) {
	p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.9.0/30")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Acquire(); err != nil {
		t.Fatal(err)
	}
	_, err = p.Acquire()
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "(1 lease,") {
		t.Errorf("full pool of one: %v", err)
	}
}

func TestAcquirePreferring(t *testing.T) {
	p, err := New(t.TempDir(), []netip.Prefix{netip.MustParsePrefix("198.18.8.0/29"), netip.MustParsePrefix("fd00:8::/64")})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.AcquirePreferring(netip.MustParseAddr("198.18.8.5"))
	if err != nil || l.Client[0].Addr().String() != "198.18.8.5" {
		t.Fatalf("preferring .5: %+v, %v", l, err)
	}
	l2, err := p.AcquirePreferring(netip.MustParseAddr("fd00:8::5"))
	if err != nil || l2.Index == l.Index {
		t.Fatalf("preferring a held lease: %+v, %v; want another", l2, err)
	}
	l3, err := p.AcquirePreferring(netip.MustParseAddr("192.0.2.1"))
	if err != nil || l3.Index != 1 {
		t.Fatalf("preferring an address outside the pool: %+v, %v; want the lowest free", l3, err)
	}
}
