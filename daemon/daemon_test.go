package daemon

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStart: a child that says READY=1 leaves Start with its pid and
// status while it goes on; one that fails first gives its exit status,
// its words having reached stderr.
func TestStart(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// The child sends READY=1 over $NOTIFY_SOCKET with a tiny Go helper:
	// this test binary, run as one.
	var stderr strings.Builder
	pid, status, err := Start([]string{os.Args[0]}, []string{"DAEMON_HELPER=ready"}, &stderr, 10*time.Second)
	if err != nil || pid <= 0 || status != "all good" {
		t.Fatalf("Start = %d, %q, %v", pid, status, err)
	}
	if syscall.Kill(pid, 0) != nil {
		t.Errorf("the child (pid %d) is gone after it was ready", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)

	stderr.Reset()
	_, _, err = Start([]string{sh, "-c", "echo it failed >&2; exit 3"}, nil, &stderr, 10*time.Second)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Status != 3 || !strings.Contains(stderr.String(), "it failed") {
		t.Errorf("a failing child: %v, stderr %q", err, stderr.String())
	}
}

// TestMain runs this test binary as TestStart's child when asked to.
func TestMain(m *testing.M) {
	if os.Getenv("DAEMON_HELPER") == "ready" {
		ready()
	}
	os.Exit(m.Run())
}

// ready is the child of TestStart: it says it is ready, then waits to be
// killed.
func ready() {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"})
	if err != nil {
		os.Exit(1)
	}
	c.Write([]byte("READY=1\nSTATUS=all good"))
	time.Sleep(time.Minute)
	os.Exit(0)
}
