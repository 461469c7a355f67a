// Package netnstest runs test code in a network namespace of its own, so
// that tests of devices, addresses and routes touch nothing of the machine's
// own network, and says when a test needs root.
package netnstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// Run runs f on a thread in a fresh network namespace, which goes away with
// the thread afterwards. Without root it skips the test, except in CI,
// where it fails it.
func Run(t *testing.T, f func()) {
	t.Helper()
	NeedRoot(t, "network namespaces")
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: Go retires the thread
		ns, err := netns.New()
		if err != nil {
			t.Errorf("new netns: %v", err)
			return
		}
		defer ns.Close()
		f()
	}()
	<-done
}

// NeedRoot skips a test that needs root (for what why says) unless it runs
// as root; in CI, which runs as root, it fails the test instead.
func NeedRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this test needs root (%s), as CI has", why)
	}
	t.Skipf("this test needs root (%s)", why)
}
