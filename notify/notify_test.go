package notify

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// listen opens a fake service manager's socket at name (a path, or '@' and
// an abstract name) and points NOTIFY_SOCKET at it for the test.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

// recv returns the next datagram on conn.
func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// abstractName is a name in the abstract namespace no other test run uses.
func abstractName() string {
	return fmt.Sprintf("@sshvpn-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
}

func TestSend(t *testing.T) {
	for _, tc := range []struct{ kind, name string }{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", abstractName()},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			if tc.kind == "abstract" && runtime.GOOS != "linux" {
				t.Skip("abstract sockets are Linux's")
			}
			conn := listen(t, tc.name)
			if tc.kind == "abstract" {
				// In the abstract namespace, not a file named "@..." here.
				if _, err := os.Lstat(tc.name); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Lstat(%q) = %v; want no such file", tc.name, err)
				}
			}
			sent, err := Send("READY=1\nSTATUS=up")
			if !sent || err != nil {
				t.Fatalf("Send = %v, %v; want true, nil", sent, err)
			}
			if got, want := recv(t, conn), "READY=1\nSTATUS=up"; got != want {
				t.Errorf("received %q, want %q", got, want)
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	conn := listen(t, filepath.Join(t.TempDir(), "notify.sock"))
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"Ready without status", func() error { return Ready("") }, "READY=1"},
		{"Ready with status", func() error { return Ready("up: tun0 198.18.0.1/30") }, "READY=1\nSTATUS=up: tun0 198.18.0.1/30"},
		{"Status", func() error { return Status("reconnecting in 4s: connection reset") }, "STATUS=reconnecting in 4s: connection reset"},
		{"Status with line breaks", func() error { return Status("ssh said:\nREADY=1\r\nbye") }, "STATUS=ssh said: READY=1  bye"},
		{"Ready with line breaks", func() error { return Ready("a\nSTOPPING=1") }, "READY=1\nSTATUS=a STOPPING=1"},
		{"Stopping", Stopping, "STOPPING=1"},
	} {
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := recv(t, conn); got != tc.want {
			t.Errorf("%s: received %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Outside systemd, NOTIFY_SOCKET unset or empty, every call is a no-op.
func TestUnset(t *testing.T) {
	for _, unset := range []bool{true, false} {
		t.Setenv("NOTIFY_SOCKET", "") // and restored after the test
		if unset {
			os.Unsetenv("NOTIFY_SOCKET")
		}
		if sent, err := Send("READY=1"); sent || err != nil {
			t.Errorf("unset=%v: Send = %v, %v; want false, nil", unset, sent, err)
		}
		for _, f := range []func() error{func() error { return Ready("up") }, func() error { return Status("x") }, Stopping} {
			if err := f(); err != nil {
				t.Errorf("unset=%v: %v", unset, err)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	stream, err := net.Listen("unix", filepath.Join(dir, "stream.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	for _, tc := range []struct{ name, socket, want string }{
		{"relative path", "run/notify.sock", "not an absolute path"},
		{"missing socket", filepath.Join(dir, "missing.sock"), "no such file"},
		{"missing abstract socket", abstractName(), "connection refused"},
		{"stream socket", filepath.Join(dir, "stream.sock"), "protocol wrong type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.socket[0] == '@' && runtime.GOOS != "linux" {
				t.Skip("abstract sockets are Linux's")
			}
			t.Setenv("NOTIFY_SOCKET", tc.socket)
			sent, err := Send("READY=1")
			if sent || err == nil {
				t.Fatalf("Send = %v, %v; want false and an error", sent, err)
			}
			if !strings.HasPrefix(err.Error(), "notify: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want \"notify: ...%s...\"", err, tc.want)
			}
			if err := Ready("up"); err == nil {
				t.Error("Ready: no error")
			}
		})
	}
}
