package e2e

import (
	"bytes"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// offloadsOf returns the offloads each "tunnel up" line in log reports.
func offloadsOf(log string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`msg="tunnel up".* offloads=(\S+)`).FindAllStringSubmatch(log, -1) {
		out = append(out, m[1])
	}
	return out
}

// txPackets reads how many packets dev in ns has sent, as the kernel
// counts them: a GSO super-packet counts once.
func (l *lab) txPackets(ns, dev string) int {
	l.t.Helper()
	out := l.mustIn(ns, "cat", "/sys/class/net/"+dev+"/statistics/tx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		l.t.Fatalf("tx_packets of %s: %q", dev, out)
	}
	return n
}

// udpSegments sends count datagrams of size bytes from the client
// namespace to addr in namespace ns, several per send through UDP_SEGMENT
// (the sender-side segmentation the kernel can pass to the tunnel whole),
// and returns how many arrived intact.
func (l *lab) udpSegments(ns, addr string, count, size int) int {
	t := l.t
	t.Helper()
	var pc net.PacketConn
	inNetns(t, ns, func() {
		var err error
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			t.Fatalf("listen: %v", err)
		}
	})
	defer pc.Close()
	pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	var conn *net.UDPConn
	inNetns(t, l.Client, func() {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn = c.(*net.UDPConn)
	})
	defer conn.Close()
	rc, _ := conn.SyscallConn()
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, size) })
	if serr != nil {
		t.Fatalf("UDP_SEGMENT: %v", serr)
	}
	want := bytes.Repeat([]byte("sshvpn-uso "), size/11+1)[:size]
	const perSend = 8
	for sent := 0; sent < count; sent += perSend {
		if _, err := conn.Write(bytes.Repeat(want, perSend)); err != nil {
			t.Fatalf("send: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := 0
	buf := make([]byte, 65536)
	for got < count {
		pc.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		if bytes.Equal(buf[:n], want) {
			got++
		}
	}
	return got
}

// offloadChecks runs the traffic of the offload issue through a lab whose
// tunnel is up: IPv4 and IPv6 pings including 8000-byte ICMP (fragments)
// both ways, TCP both ways with checksums over IPv4 and IPv6, datagrams
// from a UDP_SEGMENT sender, and TCP through the server to the LAN host.
// With super, it checks that the client's device sent super-packets.
func (l *lab) offloadChecks(super bool) {
	t := l.t
	t.Helper()
	for _, c := range []struct{ ns, addr string }{{l.Client, serverV4}, {l.Client, serverV6}, {l.Server, clientV4}, {l.Server, clientV6}} {
		for _, size := range []string{"56", "8000"} {
			if err := l.ping(c.ns, c.addr, "-s", size); err != nil {
				t.Error(err)
			}
		}
	}
	before := l.txPackets(l.Client, "vpn0")
	const size = 20 << 20
	for _, a := range []string{serverV4, serverV6} {
		l.transferBothWays(a, size)
	}
	sent := l.txPackets(l.Client, "vpn0") - before
	// Plain 1500-byte packets: at least 2*20 MB/1448 data segments. With
	// TSO, a fraction of that.
	t.Logf("the client's device sent %d packets for 40 MB up (and the acks of 40 MB down)", sent)
	if plain := 2 * size / 1448; super && sent > plain/2 {
		t.Errorf("the client's device sent %d packets for 40 MB: no super-packets (plain would be over %d)", sent, plain)
	} else if !super && sent < plain {
		t.Errorf("the client's device sent only %d packets for 40 MB without offloads (want over %d)", sent, plain)
	}
	for _, a := range []string{serverV4, "[" + serverV6 + "]"} {
		if got := l.udpSegments(l.Server, a+":7003", 96, 1200); got != 96 {
			t.Errorf("UDP_SEGMENT to %s: %d of 96 datagrams arrived", a, got)
		}
	}
	l.transferBothWaysIn(l.LAN, l.env["LAB_LAN_HOST"], 10<<20)
	l.transferBothWaysIn(l.LAN, l.env["LAB_LAN_HOST6"], 10<<20)
}

// offloadLab is a lab whose server forwards, with the client's tunnel
// routing the LAN through the server.
func offloadLab(t *testing.T) *lab {
	l := newLab(t)
	l.mustIn(l.Server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	return l
}

var offloadArgs = append(append([]string(nil), tunnelArgs...), "--dev", "vpn0", "--route", "198.51.100.0/24", "--route", "2001:db8:2::/64")

// TestOffloadsAgreed: both sides have the kernel's offloads (the default):
// the handshake agrees on them, super-packets cross, and every kind of
// traffic arrives intact.
func TestOffloadsAgreed(t *testing.T) {
	l := offloadLab(t)
	v := l.up(append(offloadArgs, "root@server")...)
	got := offloadsOf(v.log.String())
	if len(got) != 2 || got[0] != got[1] || !strings.HasPrefix(got[0], "csum,tso4,tso6") {
		t.Fatalf("tunnel up with offloads %q, want csum,tso4,tso6 (and uso where the kernel has it) on both sides", got)
	}
	l.offloadChecks(true)
}

// TestOffloadsMixed: the server's forced command says --no-offload, as an
// older or offload-less server would: the client gets plain packets and
// sends only plain ones, and everything still arrives.
func TestOffloadsMixed(t *testing.T) {
	l := offloadLab(t)
	l.setKeys("root", "--addr", serverV4+"/30", "--peer-addr", clientV4+"/30", "--addr", serverV6+"/126", "--peer-addr", clientV6+"/126", "--no-offload")
	v := l.up(append(offloadArgs, "root@server")...)
	if got := offloadsOf(v.log.String()); len(got) != 2 || got[0] != "none" || got[1] != "none" {
		t.Fatalf("tunnel up with offloads %q, want none on both sides", got)
	}
	l.offloadChecks(false)
}

// TestOffloadsOff: the client's --no-offload turns them off for both.
func TestOffloadsOff(t *testing.T) {
	l := offloadLab(t)
	v := l.up(append(offloadArgs, "--no-offload", "root@server")...)
	if got := offloadsOf(v.log.String()); len(got) != 2 || got[0] != "none" || got[1] != "none" {
		t.Fatalf("tunnel up with offloads %q, want none on both sides", got)
	}
	l.offloadChecks(false)
}
