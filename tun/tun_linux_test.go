package tun

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// inNewNetns runs f on a thread in a fresh network namespace, removed
// afterwards, so the test touches nothing of the machine's own network.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("tun tests need root in CI")
		}
		t.Skip("tun tests need root")
	}
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

func TestOpenConfigureRoute(t *testing.T) {
	inNewNetns(t, func() {
		dev, err := Open(Config{Name: "tt0", Mode: ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		addrs := []netip.Prefix{netip.MustParsePrefix("198.18.40.1/30"), netip.MustParsePrefix("2001:2:40::1/64")}
		if added, err := Configure(dev.Name(), Setup{MTU: 1400, Addrs: addrs}); err != nil || len(added) != 2 {
			t.Errorf("Configure: added %v, %v", added, err)
			return
		}
		// Configuring again changes nothing and is no error.
		if added, err := Configure(dev.Name(), Setup{MTU: 1400, Addrs: addrs}); err != nil || len(added) != 0 {
			t.Errorf("second Configure: added %v, %v; want nothing", added, err)
		}
		if dev.MTU() != 1400 {
			t.Errorf("MTU %d, want 1400", dev.MTU())
		}
		out, _ := exec.Command("ip", "addr", "show", "dev", "tt0").CombinedOutput()
		for _, want := range []string{"198.18.40.1/30", "2001:2:40::1/64", "mtu 1400", ",UP"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%q missing from:\n%s", want, out)
			}
		}
		r := Route{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "tt0"}
		if err := AddRoute(r); err != nil {
			t.Error(err)
		}
		if err := AddRoute(r); !errors.Is(err, fs.ErrExist) {
			t.Errorf("adding the route twice: %v, want fs.ErrExist", err)
		}
		if got, err := RouteTo(netip.MustParseAddr("198.51.100.7")); err != nil || got.Dev != "tt0" {
			t.Errorf("RouteTo: %+v, %v; want dev tt0", got, err)
		}
		if err := DelRoute(r); err != nil {
			t.Error(err)
		}
		if err := DelRoute(r); err != nil {
			t.Errorf("removing a route that is gone: %v", err)
		}
		if err := DelAddrs(dev.Name(), addrs); err != nil {
			t.Error(err)
		}
		out, _ = exec.Command("ip", "addr", "show", "dev", "tt0").CombinedOutput()
		if strings.Contains(string(out), "198.18.40.1") || strings.Contains(string(out), "2001:2:40::1") {
			t.Errorf("DelAddrs left addresses:\n%s", out)
		}
	})
}

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
			_, err := dev.Read(make([]byte, 2000))
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

// TestNetsAndMarkedRoutes: Nets lists every interface's addresses with their
// prefix lengths, routes AddRoute adds carry RouteProtocol and Routes finds
// them, and DelRoute never removes a route sshvpn did not add.
func TestNetsAndMarkedRoutes(t *testing.T) {
	inNewNetns(t, func() {
		if err := open16Long(); err == nil {
			t.Error("Open accepted a 16-byte name")
		}
		dev, err := Open(Config{Name: "tn0", Mode: ModeTUN})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		if _, err := Configure("tn0", Setup{Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.41.1/30")}}); err != nil {
			t.Error(err)
			return
		}
		nets, err := Nets()
		if err != nil {
			t.Error(err)
			return
		}
		found := false
		for _, n := range nets {
			if n.Prefix.String() == "198.18.41.1/30" && n.Dev == "tn0" {
				found = true
			}
		}
		if !found {
			t.Errorf("Nets = %v, want 198.18.41.1/30 on tn0", nets)
		}
		ours := Route{Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "tn0"}
		if err := AddRoute(ours); err != nil {
			t.Error(err)
			return
		}
		if out, err := exec.Command("ip", "route", "add", "203.0.113.0/24", "dev", "tn0").CombinedOutput(); err != nil {
			t.Errorf("ip route add: %v %s", err, out)
			return
		}
		rs, err := Routes(RouteProtocol)
		if err != nil || len(rs) != 1 || rs[0] != ours {
			t.Errorf("Routes(RouteProtocol) = %v, %v; want only %v", rs, err, ours)
		}
		out, _ := exec.Command("ip", "route", "show", "proto", "115").CombinedOutput()
		if !strings.Contains(string(out), "198.51.100.0/24") {
			t.Errorf("ip route show proto 115:\n%s", out)
		}
		// Not ours: DelRoute leaves it.
		DelRoute(Route{Dst: netip.MustParsePrefix("203.0.113.0/24"), Dev: "tn0"})
		if out, _ := exec.Command("ip", "route", "show", "203.0.113.0/24").CombinedOutput(); !strings.Contains(string(out), "203.0.113.0/24") {
			t.Error("DelRoute removed a route sshvpn did not add")
		}
	})
}

// open16Long opens a device whose name is one byte too long.
func open16Long() error {
	d, err := Open(Config{Name: "sixteen-bytes-16"})
	if err == nil {
		d.Close()
	}
	return err
}
