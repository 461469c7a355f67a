package tun

import (
	"encoding/binary"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/internal/netnstest"
	"golang.org/x/sys/unix"
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
		// Close once the reader waits in Read (parked on the poller):
		// the case Close must end.
		deadline := time.Now().Add(5 * time.Second)
		for !readerParked() {
			if time.Now().After(deadline) {
				t.Fatal("the reader never waited in Read")
			}
			time.Sleep(time.Millisecond)
		}
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

// TestOffloadKernel: a device opened with Offload has the kernel's
// offloads; with USO enabled, a UDP_SEGMENT send of 5000 bytes comes out as
// one super-packet behind a header that CheckVnet accepts, and with
// offloads off as plain segments. TryRead returns at once when the device
// is empty.
func TestOffloadKernel(t *testing.T) {
	inNewNetns(t, func() {
		dev, err := Open(Config{Name: "off0", Offload: true})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		if dev.Offloads()&(OffloadCSUM|OffloadTSO4|OffloadTSO6) != OffloadCSUM|OffloadTSO4|OffloadTSO6 {
			t.Errorf("offloads %v, want at least csum,tso4,tso6", dev.Offloads())
			return
		}
		for _, args := range [][]string{{"addr", "add", "198.18.0.1/24", "dev", "off0"}, {"link", "set", "off0", "up"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Errorf("ip %v: %v %s", args, err, out)
				return
			}
		}
		buf := make([]byte, VnetHdrLen+65536)
		for i := 0; ; i++ { // the kernel's own chatter, then nothing
			n, err := dev.TryRead(buf)
			if err != nil || i == 100 {
				t.Fatalf("TryRead: %v after %d packets", err, i)
			}
			if n == 0 {
				break
			}
		}
		uso := dev.Offloads()&OffloadUSO4 != 0
		send := func() {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2), Port: 9})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if rc, err := c.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1000) })
			}
			if _, err := c.Write(make([]byte, 5000)); err != nil {
				t.Fatal(err)
			}
		}
		// readUDP reads until a UDP packet to port 9 (skipping the
		// kernel's own IPv6 and IGMP chatter).
		readUDP := func() (VnetHdr, []byte) {
			for {
				n, err := dev.Read([][]byte{buf}, []int{0}, 0)
				if err != nil || n != 1 {
					t.Fatal(err)
				}
				h, _ := ParseVnetHdr(buf)
				pkt := buf[VnetHdrLen:]
				if pkt[0]>>4 == 4 && pkt[9] == 17 {
					return h, pkt
				}
			}
		}
		if uso {
			if err := dev.SetOffload(OffloadCSUM | OffloadUSO4 | OffloadUSO6); err != nil {
				t.Fatal(err)
			}
			send()
			h, pkt := readUDP()
			if h.GSOType != GSOUDPL4 || h.GSOSize != 1000 || binary.BigEndian.Uint16(pkt[2:]) != 5028 {
				t.Errorf("with USO: header %+v, IP length %d; want one super-packet of 5028 bytes", h, binary.BigEndian.Uint16(pkt[2:]))
			}
		} else {
			t.Logf("this kernel has no USO for tun (%v)", dev.Offloads())
		}
		if err := dev.SetOffload(0); err != nil {
			t.Fatal(err)
		}
		send()
		for i := range 5 {
			h, pkt := readUDP()
			if !h.Plain() || binary.BigEndian.Uint16(pkt[2:]) != 1028 {
				t.Errorf("segment %d without offloads: header %+v, IP length %d", i, h, binary.BigEndian.Uint16(pkt[2:]))
			}
		}
	})
}

// TestPersistentOffloadsReset: offloads belong to the device, so a run
// that enabled them on an admin's persistent device must not leave them
// for the next, plain reader.
func TestPersistentOffloadsReset(t *testing.T) {
	inNewNetns(t, func() {
		if out, err := exec.Command("ip", "tuntap", "add", "dev", "ptun0", "mode", "tun").CombinedOutput(); err != nil {
			t.Errorf("ip tuntap add: %v %s", err, out)
			return
		}
		dev, err := Open(Config{Name: "ptun0", Offload: true})
		if err != nil || dev.Offloads() == 0 {
			t.Errorf("open with offloads: %v, %v", err, dev)
			return
		}
		if err := dev.SetOffload(dev.Offloads()); err != nil {
			t.Error(err)
		}
		dev.Close()
		dev, err = Open(Config{Name: "ptun0"})
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		for _, args := range [][]string{{"addr", "add", "198.18.0.1/24", "dev", "ptun0"}, {"link", "set", "ptun0", "up"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Errorf("ip %v: %v %s", args, err, out)
				return
			}
		}
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2), Port: 9})
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		rc, _ := c.SyscallConn()
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1000) })
		if _, err := c.Write(make([]byte, 5000)); err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 65536)
		for range 50 {
			n, err := dev.Read([][]byte{buf}, []int{0}, 0)
			if err != nil || n != 1 {
				t.Error(err)
				return
			}
			if buf[0]>>4 == 4 && buf[9] == 17 {
				if l := binary.BigEndian.Uint16(buf[2:]); l != 1028 {
					t.Errorf("a plain reader got a UDP packet of %d bytes: offloads left on the device", l)
				}
				return
			}
		}
		t.Error("no UDP packet read")
	})
}

// readerParked reports whether a goroutine waits in (*device).Read for the
// poller to say the file is readable.
func readerParked() bool {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "(*device).Read(") && strings.Contains(g, "waitRead") {
			return true
		}
	}
	return false
}

// TestMultiQueue: a multi-queue device spreads flows over its queues, each
// flow through one queue, with the same header on each; once a queue is
// closed, every flow leaves through those left.
func TestMultiQueue(t *testing.T) {
	inNewNetns(t, func() {
		first, err := Open(Config{Name: "mq0", Offload: true, MultiQueue: true})
		if err != nil {
			t.Error(err)
			return
		}
		queues := []Device{first}
		defer func() {
			for _, q := range queues {
				q.Close()
			}
		}()
		for range 2 {
			q, err := OpenQueue(first)
			if err != nil {
				t.Error(err)
				return
			}
			if q.Name() != "mq0" || q.Offloads() != first.Offloads() {
				t.Errorf("queue %s with offloads %v, want mq0's %v", q.Name(), q.Offloads(), first.Offloads())
			}
			queues = append(queues, q)
		}
		if _, err := OpenQueue(&device{name: "x"}); err == nil {
			t.Error("OpenQueue of a single-queue device succeeded")
		}
		for _, args := range [][]string{{"addr", "add", "198.18.0.1/24", "dev", "mq0"}, {"link", "set", "mq0", "up"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Errorf("ip %v: %v %s", args, err, out)
				return
			}
		}
		off := 0
		if first.Offloads() != 0 {
			off = VnetHdrLen
		}
		// flows sends one UDP datagram from each of 32 source ports and
		// says which queue each port's came out of.
		flows := func(qs []Device) map[int]int {
			via := map[int]int{}
			for port := 40000; port < 40032; port++ {
				c, err := net.DialUDP("udp4", &net.UDPAddr{Port: port}, &net.UDPAddr{IP: net.IPv4(198, 18, 0, 2), Port: 9})
				if err != nil {
					t.Fatal(err)
				}
				c.Write([]byte("x"))
				c.Close()
			}
			buf := make([]byte, VnetHdrLen+65536)
			deadline := time.Now().Add(5 * time.Second)
			for len(via) < 32 && time.Now().Before(deadline) {
				for i, q := range qs {
					n, err := q.TryRead(buf)
					if err != nil {
						t.Fatal(err)
					}
					if n < off+28 {
						continue // nothing, or too short for UDP over IPv4
					}
					pkt := buf[off:n]
					if pkt[0]>>4 != 4 || pkt[9] != 17 {
						continue
					}
					port := int(binary.BigEndian.Uint16(pkt[20:]))
					if prev, seen := via[port]; seen && prev != i {
						t.Errorf("port %d's flow came out of queues %d and %d", port, prev, i)
					}
					via[port] = i
				}
				time.Sleep(time.Millisecond)
			}
			if len(via) != 32 {
				t.Fatalf("%d of 32 flows came out of the queues", len(via))
			}
			return via
		}
		used := map[int]bool{}
		for _, q := range flows(queues) {
			used[q] = true
		}
		if len(used) < 2 {
			t.Errorf("32 flows all left through one queue of three")
		}
		queues[1].Close()
		queues = append(queues[:1], queues[2:]...)
		flows(queues) // every flow still comes out
		// A queue taken out of the set gets nothing until it is back.
		q := queues[1].(Queue)
		if err := q.SetQueue(false); err != nil {
			t.Fatal(err)
		}
		if err := q.SetQueue(false); err != nil {
			t.Errorf("SetQueue(false) twice: %v", err)
		}
		for port, via := range flows(queues) {
			if via != 0 {
				t.Errorf("port %d's flow came out of the detached queue", port)
			}
		}
		if err := q.SetQueue(true); err != nil {
			t.Fatal(err)
		}
		used = map[int]bool{}
		for _, via := range flows(queues) {
			used[via] = true
		}
		if !used[1] {
			t.Errorf("no flow came out of the queue put back")
		}
	})
}
