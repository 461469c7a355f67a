package notify_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/sshvpn/sshvpn/notify"
)

// A service's life as systemd sees it. The example plays systemd with a
// socket of its own; under systemd, NOTIFY_SOCKET is set already, and
// without it each call does nothing.
func Example() {
	dir, _ := os.MkdirTemp("", "notify")
	defer os.RemoveAll(dir)
	systemd, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer systemd.Close()
	os.Setenv("NOTIFY_SOCKET", systemd.LocalAddr().String())
	defer os.Unsetenv("NOTIFY_SOCKET")

	notify.Ready("up: tun0 198.18.0.1/30")
	notify.Status("connection lost (ssh exited)\nreconnecting in 2s")
	notify.Ready("up again: tun0 198.18.0.1/30")
	notify.Stopping()

	buf := make([]byte, 4096)
	for range 4 {
		n, _ := systemd.Read(buf)
		fmt.Printf("%q\n", buf[:n])
	}
	// Output:
	// "READY=1\nSTATUS=up: tun0 198.18.0.1/30"
	// "STATUS=connection lost (ssh exited) reconnecting in 2s"
	// "READY=1\nSTATUS=up again: tun0 198.18.0.1/30"
	// "STOPPING=1"
}
