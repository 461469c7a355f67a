//go:build linux

// Command wanem is the lab's link emulator (see package wanem): run in
// one network namespace, it makes a tun device there and another in a
// second namespace, and carries packets between them as a WAN would.
//
//	ip netns exec CLIENT wanem -netns /run/netns/SERVER -dev wan0 \
//	    -profile "delay=20ms loss=1% rate=200mbit queue=50ms" -stats wan.json
//
// Both devices are named -dev; the lab gives them addresses and brings
// them up once -ready exists. SIGUSR1 writes the counters to -stats (also
// written at exit): JSON with "up" (this namespace to the other) and
// "down". SIGTERM or SIGINT ends it, and the devices go with it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sshvpn/sshvpn/internal/wanem"
)

func main() {
	var (
		nsPath   = flag.String("netns", "", "the other namespace (a path such as /run/netns/NAME)")
		dev      = flag.String("dev", "wan0", "the devices' name, in both namespaces")
		profile  = flag.String("profile", "", `both directions, e.g. "delay=20ms loss=1% rate=200mbit queue=50ms"`)
		upProf   = flag.String("up", "", "this namespace to the other, instead of -profile")
		downProf = flag.String("down", "", "the other namespace to this, instead of -profile")
		stats    = flag.String("stats", "", "file for the counters (JSON), written on SIGUSR1 and at exit")
		ready    = flag.String("ready", "", "file created once both devices exist")
		mtu      = flag.Int("mtu", 1500, "the devices' MTU")
	)
	flag.Parse()
	if err := run(*nsPath, *dev, *profile, *upProf, *downProf, *stats, *ready, *mtu); err != nil {
		fmt.Fprintln(os.Stderr, "wanem:", err)
		os.Exit(1)
	}
}

func run(nsPath, dev, profile, upProf, downProf, statsFile, ready string, mtu int) error {
	if nsPath == "" {
		return fmt.Errorf("-netns is required")
	}
	up, err := wanem.ParseProfile(or(upProf, profile))
	if err != nil {
		return err
	}
	down, err := wanem.ParseProfile(or(downProf, profile))
	if err != nil {
		return err
	}
	runtime.LockOSThread() // netlink calls below act on this thread's namespace
	a, err := openTun(dev)
	if err != nil {
		return err
	}
	defer a.Close()
	tmp := dev + "-wanem"
	if len(tmp) > 15 {
		tmp = "wanem-tmp"
	}
	b, err := openTun(tmp)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := moveTo(tmp, dev, nsPath, mtu); err != nil {
		return err
	}
	if l, err := netlink.LinkByName(dev); err == nil {
		netlink.LinkSetMTU(l, mtu)
	}
	runtime.UnlockOSThread()
	if ready != "" {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var upSt, downSt wanem.Stats
	write := func() {
		if statsFile == "" {
			return
		}
		b, _ := json.Marshal(map[string]any{"up": upSt.Snapshot(), "down": downSt.Snapshot(), "profile_up": up.String(), "profile_down": down.String()})
		os.WriteFile(statsFile, append(b, '\n'), 0o644)
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	errc := make(chan error, 2)
	go func() { errc <- wanem.Pipe(ctx, a, b, up, &upSt) }()
	go func() { errc <- wanem.Pipe(ctx, b, a, down, &downSt) }()
	for {
		select {
		case <-usr1:
			write()
		case err := <-errc:
			write()
			return err
		case <-ctx.Done():
			write()
			a.Close()
			b.Close()
			return nil
		}
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// openTun makes a tun device (IFF_TUN, no packet information) in this
// thread's namespace.
func openTun(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	var ifr [unix.IFNAMSIZ + 64]byte
	copy(ifr[:], name)
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("creating tun device %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// moveTo moves device tmp into the namespace at nsPath, renamed to name.
func moveTo(tmp, name, nsPath string, mtu int) error {
	l, err := netlink.LinkByName(tmp)
	if err != nil {
		return err
	}
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("%s: %w", nsPath, err)
	}
	defer target.Close()
	if err := netlink.LinkSetNsFd(l, int(target)); err != nil {
		return fmt.Errorf("moving %s to %s: %w", tmp, nsPath, err)
	}
	h, err := netlink.NewHandleAt(target)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err = h.LinkByName(tmp)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(l, name); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmp, name, err)
	}
	return h.LinkSetMTU(l, mtu)
}
