//go:build linux

package spawn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseTCPRow(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the hand-written rows are those of a little-endian host")
	}
	ap := netip.MustParseAddrPort
	tests := []struct {
		line          string
		local, remote netip.AddrPort
		state         uint8
		inode         uint64
	}{
		{"   0: 0100007F:0016 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 20 4 30 10 -1",
			ap("127.0.0.1:22"), ap("127.0.0.1:53956"), 1, 12345},
		{"   1: 020200C0:9C32 507100CB:01BB 06 00000000:00000000 03:000016EF 00000000     0        0 0 3 00000000e5aba338",
			ap("192.0.2.2:39986"), ap("203.0.113.80:443"), 6, 0},
		{"  12: 0100000A:0016 0A00A8C0:FFFF 0A 00000000:00000000 00:00000000 00000000     0        0 651 1 000000008fa84fc2 100 0 0 10 0",
			ap("10.0.0.1:22"), ap("192.168.0.10:65535"), 0x0a, 651},
		{"   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:A1B2 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 20 4 0 10 -1",
			ap("[::1]:8080"), ap("[::1]:41394"), 1, 999},
		{"   3: B80D0120000000000000000078563412:0016 B80D01200000000000000000FFEEDDCC:C350 01 00000000:00000000 00:00000000 00000000     0        0 4294967296 1 0000000000000000 20 4 0 10 -1",
			ap("[2001:db8::1234:5678]:22"), ap("[2001:db8::ccdd:eeff]:50000"), 1, 4294967296},
		{"   4: 00000000000000000000000000000000:0016 0000000000000000FFFF00000100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 20 4 0 10 -1",
			ap("[::]:22"), ap("127.0.0.1:53956"), 1, 77},
		{"   5: 0000000000000000FFFF00000202A8C0:0016 0000000000000000FFFF0000630271C6:0050 01 00000000:00000000 00:00000000 00000000     0        0 78 1 0000000000000000 20 4 0 10 -1",
			ap("192.168.2.2:22"), ap("198.113.2.99:80"), 1, 78},
	}
	for _, tt := range tests {
		r, err := parseTCPRow(tt.line)
		if err != nil {
			t.Errorf("parseTCPRow(%q): %v", tt.line, err)
			continue
		}
		if r.local != tt.local || r.remote != tt.remote || r.state != tt.state || r.inode != tt.inode {
			t.Errorf("parseTCPRow(%q) = %v %v st %d inode %d, want %v %v st %d inode %d",
				tt.line, r.local, r.remote, r.state, r.inode, tt.local, tt.remote, tt.state, tt.inode)
		}
		if r.remote.Addr().Is4In6() {
			t.Errorf("parseTCPRow(%q): remote %v not unmapped", tt.line, r.remote)
		}
	}
}

func TestParseTCPRowErrors(t *testing.T) {
	for _, line := range []string{
		"",
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
		"   0: 0100007F:0016 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0",
		"   0: 0100007G:0016 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0 1",
		"   0: 0100007F:0016 0100007F:D2C 01 00000000:00000000 00:00000000 00000000  1000        0 1",
		"   0: 0100007F:0016 00100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0 1",
		"   0: 0100007F:0016 0100007FD2C4 01 00000000:00000000 00:00000000 00000000  1000        0 1",
		"   0: 0100007F:0016 0100007F:D2C4 1G 00000000:00000000 00:00000000 00000000  1000        0 1",
		"   0: 0100007F:0016 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000  1000        0 x",
	} {
		if r, err := parseTCPRow(line); err == nil {
			t.Errorf("parseTCPRow(%q) = %+v, want an error", line, r)
		}
	}
}

func TestParseStatPPID(t *testing.T) {
	for stat, want := range map[string]int{
		"1234 (ssh) S 1200 1234 1200 0 -1 4194560":      1200,
		"1234 (a b) c) (d) R 99 1234 1200 0 -1 4194560": 99,
		"1234 (ssh)":                -1,
		"garbage":                   -1,
		"1234 (x) S notanumber 1 2": -1,
	} {
		got, ok := parseStatPPID(stat)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("parseStatPPID(%q) = %d, want %d", stat, got, want)
		}
	}
}

// inodeOf returns the socket inode of c's file descriptor.
func inodeOf(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		var target string
		target, lerr = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if lerr == nil {
			_, lerr = fmt.Sscanf(target, "socket:[%d]", &ino)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ino
}

// listen listens on addr ("127.0.0.1:0"), skipping the test if the address
// family is unavailable.
func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func acceptOne(t *testing.T, ln net.Listener) *net.TCPConn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// TestTCPTableOwnSockets checks the decoding against the kernel: the rows of
// this process's own connections must give back their addresses.
func TestTCPTableOwnSockets(t *testing.T) {
	for _, tt := range []struct{ name, network, listen, dial, table string }{
		{"ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1", "tcp"},
		{"ipv6", "tcp6", "[::1]:0", "::1", "tcp6"},
		{"ipv4-mapped", "tcp", "[::]:0", "127.0.0.1", "tcp6"}, // the accepted end is AF_INET6
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listen(t, tt.network, tt.listen)
			port := ln.Addr().(*net.TCPAddr).Port
			d, err := net.Dial("tcp", net.JoinHostPort(tt.dial, strconv.Itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			a := acceptOne(t, ln)
			dialer := d.(*net.TCPConn)

			conns := map[uint64]tcpRow{}
			for _, name := range []string{"tcp", "tcp6"} {
				if err := readTCPTable("/proc/self/net/"+name, conns); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			serverEnd := netip.AddrPortFrom(netip.MustParseAddr(tt.dial), uint16(port))
			clientEnd := d.LocalAddr().(*net.TCPAddr).AddrPort()
			clientEnd = netip.AddrPortFrom(clientEnd.Addr().Unmap(), clientEnd.Port())
			if got := conns[inodeOf(t, dialer)]; got.remote != serverEnd || got.local != clientEnd {
				t.Errorf("dialing socket: %v to %v, want %v to %v", got.local, got.remote, clientEnd, serverEnd)
			}
			if got := conns[inodeOf(t, a)].remote; got != clientEnd {
				t.Errorf("accepted socket: remote %v, want %v", got, clientEnd)
			}
			// The accepted socket's row is in the table for its family.
			only := map[uint64]tcpRow{}
			if err := readTCPTable("/proc/self/net/"+tt.table, only); err != nil {
				t.Fatal(err)
			}
			if got := only[inodeOf(t, a)].remote; got != clientEnd {
				t.Errorf("accepted socket in %s: remote %v, want %v", tt.table, got, clientEnd)
			}
		})
	}
}

// runBash starts bash -c script in its own process group, killed at the end
// of the test.
func runBash(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command(bash, "-c", script)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// nest wraps a bash script in n more bash processes, each waiting for the
// inner one (the trailing command keeps bash from exec'ing it).
func nest(script string, n int) string {
	for range n {
		script = "bash -c " + QuoteWord(script) + "; exit $?"
	}
	return script
}

func TestPeerOfPID(t *testing.T) {
	for _, tt := range []struct {
		name, network, listen, host string
		depth                       int // generations of processes above the one holding the socket
	}{
		{"ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1", 0},
		{"ipv6", "tcp6", "[::1]:0", "::1", 0},
		{"child", "tcp4", "127.0.0.1:0", "127.0.0.1", 1},
		{"great-grandchild", "tcp4", "127.0.0.1:0", "127.0.0.1", 3},
		{"ipv6 grandchild", "tcp6", "[::1]:0", "::1", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listen(t, tt.network, tt.listen)
			port := ln.Addr().(*net.TCPAddr).Port
			cmd := runBash(t, nest(fmt.Sprintf("exec 3<>/dev/tcp/%s/%d; exec sleep 60", tt.host, port), tt.depth))
			acceptOne(t, ln)
			got, err := peerOfPID(cmd.Process.Pid)
			want := netip.AddrPortFrom(netip.MustParseAddr(tt.host), uint16(port))
			if err != nil || got != want {
				t.Errorf("peerOfPID = %v, %v; want %v", got, err, want)
			}
		})
	}
}

func TestPeerOfPIDUnknown(t *testing.T) {
	t.Parallel()
	ln := listen(t, "tcp4", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tt := range []struct{ name, script string }{
		{"no socket", "exec sleep 60"},
		{"too deep", nest(fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d; exec sleep 60", port), 4)},
		{"files only", "exec 3</dev/null; exec sleep 60"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := runBash(t, tt.script)
			if strings.Contains(tt.script, "/dev/tcp/") {
				acceptOne(t, ln)
			} else {
				// The script's last word is exec sleep: once the
				// process is sleep, it holds the files it keeps.
				deadline := time.Now().Add(5 * time.Second)
				for comm(cmd.Process.Pid) != "sleep" {
					if time.Now().After(deadline) {
						t.Fatalf("the script did not reach its exec: comm %q", comm(cmd.Process.Pid))
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			got, err := peerOfPID(cmd.Process.Pid)
			if !errors.Is(err, ErrPeerUnknown) {
				t.Errorf("peerOfPID = %v, %v; want ErrPeerUnknown", got, err)
			}
		})
	}
}

func TestPeerOfPIDNoProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	_, err := peerOfPID(cmd.Process.Pid) // reaped, so gone
	if err == nil || errors.Is(err, ErrPeerUnknown) {
		t.Errorf("peerOfPID of a dead process: %v, want a failure to read /proc", err)
	}
}

// TestConnPeerAddr runs a fake ssh that connects to a listener and echoes.
func TestConnPeerAddr(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	ln := listen(t, "tcp4", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	c := start(t, Options{SSH: []string{fakeSSH(t, fmt.Sprintf(`exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; exec cat'`, port))}})
	acceptOne(t, ln)
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	got, err := c.SocketPeer()
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)); err != nil || got != want {
		t.Errorf("PeerAddr = %v, %v; want %v", got, err, want)
	}
	c.Close()
	if got, err := c.SocketPeer(); err == nil {
		t.Errorf("PeerAddr after Close = %v, want an error", got)
	}
}

// TestPeerAddrRealSSH points the real ssh client at a listener that never
// answers, directly and through ProxyJump (one and two hops): the connection
// is found in ssh, its child and its grandchild.
func TestPeerAddrRealSSH(t *testing.T) {
	t.Parallel()
	requireSSH(t)
	for _, tt := range []struct {
		name string
		args func(port int) []string
	}{
		{"direct", func(p int) []string { return []string{"-p", strconv.Itoa(p), "127.0.0.1"} }},
		{"jump", func(p int) []string { return []string{"-J", fmt.Sprintf("u@127.0.0.1:%d", p), "dest.invalid"} }},
		{"two jumps", func(p int) []string {
			return []string{"-J", fmt.Sprintf("127.0.0.1:%d,hop2.invalid", p), "dest.invalid"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listen(t, "tcp4", "127.0.0.1:0")
			port := ln.Addr().(*net.TCPAddr).Port
			args := append([]string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
				"-o", "UserKnownHostsFile=/dev/null", "-T"}, tt.args(port)...)
			cmd := exec.Command("ssh", append(args, "true")...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				cmd.Wait()
			})
			acceptOne(t, ln)
			got, err := peerOfPID(cmd.Process.Pid)
			if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)); err != nil || got != want {
				t.Errorf("peerOfPID(ssh %q) = %v, %v; want %v", args, got, err, want)
			}
		})
	}
}

// comm is the command name of process pid ("" if it is gone).
func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
