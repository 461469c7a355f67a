package tun

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/internal/netnstest"
)

// inNewNetns runs f in a network namespace of its own.
func inNewNetns(t *testing.T, f func()) { t.Helper(); netnstest.Run(t, f) }

// TestCloseUnblocksRead: Close ends a Read that waits for a packet.
func TestCloseUnblocksRead(t *testing.T) {
	inNewNetns(t, func() {
		dev, err := Open(Config{Mode: ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		errc := make(chan error, 1)
		go func() {
			_, err := dev.Read([][]byte{make([]byte, 2000)}, make([]int, 1), 0)
			errc <- err
		}()
		time.Sleep(100 * time.Millisecond)
		dev.Close()
		select {
		case err := <-errc:
			if err == nil {
				t.Error("Read after Close returned no error")
			}
		case <-time.After(5 * time.Second):
			t.Error("Close did not unblock Read")
		}
	})
}

// TestAttachKeepsPersistence: opening an admin-made persistent device by
// name attaches to it, and closing leaves it in place.
func TestAttachKeepsPersistence(t *testing.T) {
	inNewNetns(t, func() {
		if out, err := exec.Command("ip", "tuntap", "add", "dev", "keep0", "mode", "tun").CombinedOutput(); err != nil {
			t.Errorf("ip tuntap add: %v %s", err, out)
			return
		}
		dev, err := Open(Config{Name: "keep0", Mode: ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		dev.Close()
		out, _ := exec.Command("ip", "-d", "link", "show", "keep0").CombinedOutput()
		if !strings.Contains(string(out), "persist on") {
			t.Errorf("keep0 lost its persistence:\n%s", out)
		}
		if _, err := Open(Config{Name: "lo"}); err == nil || !strings.Contains(err.Error(), "not a tun/tap device") {
			t.Errorf("opening lo: %v, want a refusal", err)
		}
	})
}

// TestOpenRefusesLongNames: a name the kernel would truncate is refused
// before any device is made.
func TestOpenRefusesLongNames(t *testing.T) {
	d, err := Open(Config{Name: "sixteen-bytes-16"})
	if err == nil {
		d.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "at most 15") {
		t.Errorf("Open with a 16-byte name: %v", err)
	}
}
