//go:build linux

package tcpinfo

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGet: the counters of both ends of a loopback connection, found by
// their addresses, count what was sent, as getsockopt(TCP_INFO) does.
func TestGet(t *testing.T) {
	for _, tt := range []struct{ network, listen string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"tcp", "[::]:0"}, // an IPv4 connection to an IPv6 socket
	} {
		t.Run(tt.listen, func(t *testing.T) {
			ln, err := net.Listen(tt.network, tt.listen)
			if err != nil {
				t.Skipf("no %s: %v", tt.network, err)
			}
			defer ln.Close()
			dial := ln.Addr().String()
			if tt.network == "tcp" {
				dial = net.JoinHostPort("127.0.0.1", portOf(ln.Addr()))
			}
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					io.Copy(io.Discard, c)
				}
				accepted <- c
			}()
			c, err := net.Dial("tcp", dial)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			for range 16 {
				if _, err := c.Write(buf); err != nil {
					t.Fatal(err)
				}
			}
			local := unmap(c.LocalAddr().(*net.TCPAddr).AddrPort())
			remote := unmap(c.RemoteAddr().(*net.TCPAddr).AddrPort())
			before := own(t, c)
			info, err := Get(local, remote)
			if err != nil {
				t.Fatalf("Get(%v, %v): %v", local, remote, err)
			}
			after := own(t, c)
			if info.SegsOut == 0 || info.SegsOut < before.Segs_out || info.SegsOut > after.Segs_out {
				t.Errorf("SegsOut = %d; the socket's own count was %d before and %d after", info.SegsOut, before.Segs_out, after.Segs_out)
			}
			// The other end, held by the listener's socket.
			if _, err := Get(remote, local); err != nil {
				t.Errorf("Get(%v, %v), the accepted end: %v", remote, local, err)
			}
			c.Close()
			if a := <-accepted; a != nil {
				a.Close()
			}
		})
	}
}

// TestGetNotFound: addresses of no connection give ErrNotFound.
func TestGetNotFound(t *testing.T) {
	_, err := Get(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of no connection: %v, want ErrNotFound", err)
	}
	if _, err := Get(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[::1]:2")); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get of mixed families: %v, want a refusal", err)
	}
}

// TestParse: answers cut short or malformed are errors, never a panic.
func TestParse(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 10), make([]byte, 16), {0xff, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := parse(b, netip.AddrPort{}, netip.AddrPort{}); err == nil {
			t.Errorf("parse(%x) succeeded", b)
		}
	}
}

// own is the socket's own TCP_INFO.
func own(t *testing.T, c net.Conn) *unix.TCPInfo {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func portOf(a net.Addr) string { _, p, _ := net.SplitHostPort(a.String()); return p }

func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
