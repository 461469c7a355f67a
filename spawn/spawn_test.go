package spawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{"default ssh", Options{Destination: "host", RemoteCommand: "sshvpn --remote"},
			[]string{"ssh", "-T", "-e", "none", "host", "sshvpn --remote"}},
		{"ssh with options", Options{SSH: []string{"ssh", "-p", "2222", "-i", "/k ey"}, Destination: "me@host", RemoteCommand: "/opt/sshvpn --remote"},
			[]string{"ssh", "-p", "2222", "-i", "/k ey", "-T", "-e", "none", "me@host", "/opt/sshvpn --remote"}},
		{"proxy command", Options{SSH: []string{"ssh", "-o", "ProxyCommand=ssh -W %h:%p jump"}, Destination: "[fd00::1]", RemoteCommand: "sshvpn --remote"},
			[]string{"ssh", "-o", "ProxyCommand=ssh -W %h:%p jump", "-T", "-e", "none", "[fd00::1]", "sshvpn --remote"}},
		{"other client", Options{SSH: []string{"/usr/local/bin/ssh"}, Destination: "h"},
			[]string{"/usr/local/bin/ssh", "-T", "-e", "none", "h", ""}},
		{"empty SSH slice", Options{SSH: []string{}, Destination: "h", RemoteCommand: "c"},
			[]string{"ssh", "-T", "-e", "none", "h", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.Args()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Args() = %q, want %q", got, tt.want)
			}
			n := len(got)
			if got[n-2] != tt.o.Destination || got[n-1] != tt.o.RemoteCommand {
				t.Errorf("destination and remote command are not the last two args: %q", got)
			}
		})
	}
}

func TestArgsDoesNotAliasSSH(t *testing.T) {
	ssh := make([]string, 2, 10)
	copy(ssh, []string{"ssh", "-v"})
	o := Options{SSH: ssh, Destination: "h", RemoteCommand: "c"}
	a, err := o.Args()
	if err != nil {
		t.Fatal(err)
	}
	a[0] = "changed"
	if ext := ssh[:cap(ssh)]; ext[0] != "ssh" || ext[2] != "" {
		t.Errorf("Args wrote into the caller's SSH slice: %q", ext)
	}
}

func TestArgsErrors(t *testing.T) {
	tests := []struct {
		dest string
		want string
	}{
		{"", "no destination"},
		{"-oProxyCommand=touch /tmp/pwned", "starts with '-'"},
		{"-p", "starts with '-'"},
		{"--", "starts with '-'"},
	}
	for _, tt := range tests {
		o := Options{Destination: tt.dest, RemoteCommand: "sshvpn --remote"}
		got, err := o.Args()
		if err == nil {
			t.Errorf("Args() with destination %q = %q, want an error", tt.dest, got)
			continue
		}
		if !strings.HasPrefix(err.Error(), "spawn: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("destination %q: error %q, want one mentioning %q", tt.dest, err, tt.want)
		}
		// Start refuses it too, before running anything.
		if c, err := Start(Options{SSH: []string{"/nonexistent/ssh"}, Destination: tt.dest}); err == nil || !strings.Contains(err.Error(), tt.want) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Start with destination %q: %v", tt.dest, err)
		}
	}
}

func TestExitErrorMessages(t *testing.T) {
	tests := []struct {
		e    ExitError
		want []string
	}{
		{ExitError{Status: -1, Signaled: true, RemoteCommand: "sshvpn --remote"}, []string{"killed by a signal"}},
		{ExitError{Status: 255, RemoteCommand: "sshvpn --remote", Message: "ssh: connect to host gw port 22: Connection refused"}, []string{"failed to connect", "255"}},
		{ExitError{Status: 255, RemoteCommand: "sshvpn --remote"}, []string{"255 and no message"}},
		{ExitError{Status: 127, RemoteCommand: "sshvpn --remote"}, []string{`"sshvpn --remote"`, "127", "install sshvpn", "--upload", "--remote-cmd"}},
		{ExitError{Status: 126, RemoteCommand: "/opt/sshvpn"}, []string{`"/opt/sshvpn"`, "not executable", "126", "permissions"}},
		{ExitError{Status: 1, RemoteCommand: "sshvpn --remote"}, []string{`"sshvpn --remote"`, "exited with status 1"}},
		{ExitError{Status: 3, RemoteCommand: "x"}, []string{"status 3"}},
	}
	for _, tt := range tests {
		msg := tt.e.Error()
		if !strings.HasPrefix(msg, "spawn: ") {
			t.Errorf("%+v: %q does not start with \"spawn: \"", tt.e, msg)
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%+v: %q does not mention %q", tt.e, msg, w)
			}
		}
	}
}

// fakeSSH writes a shell script standing in for ssh and returns its path.
// The script receives ssh's arguments and may ignore them.
func fakeSSH(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-ssh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs Start with a fake ssh. It retries on ETXTBSY: a parallel test
// forking while the script was being written can briefly hold it open.
func start(t *testing.T, o Options) *Process {
	t.Helper()
	if o.Destination == "" {
		o.Destination = "user@example.invalid"
	}
	if o.RemoteCommand == "" {
		o.RemoteCommand = "sshvpn --remote"
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	for i := 0; ; i++ {
		c, err := Start(o)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if !errors.Is(err, syscall.ETXTBSY) || i == 50 {
			t.Fatalf("Start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gone reports whether pid no longer exists (it was reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// waitExited waits for the child to exit, failing the test after d.
func waitExited(t *testing.T, c *Process, d time.Duration) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(d):
		t.Fatalf("ssh did not exit within %v", d)
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of os/exec and
// the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartEcho runs a fake ssh that echoes its stdin. It is not parallel, so
// that it can count goroutines.
func TestStartEcho(t *testing.T) {
	path := fakeSSH(t, "exec cat")
	before := runtime.NumGoroutine()

	var logMu sync.Mutex
	var logs []string
	c := start(t, Options{
		SSH: []string{path, "-p", "2222"},
		Logf: func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			logs = append(logs, fmt.Sprintf(format, args...))
		},
	})
	pid := c.cmd.Process.Pid

	// A small message, then a large one that cannot fit the pipe buffers:
	// write and read concurrently.
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello\n" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(big)
		werr <- err
	}()
	got = make([]byte, len(big))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("echo differs")
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v while ssh runs", c.Err())
	}

	t0 := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Close took %v for a child that exits on end of stdin", d)
	}
	select {
	case <-c.exited:
	default:
		t.Fatal("Close returned before the child exited")
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v after a clean exit", err)
	}
	if err := c.wait(context.Background()); err != nil {
		t.Errorf("Wait() = %v after a clean exit", err)
	}
	if !gone(pid) {
		t.Errorf("child %d still exists after Close", pid)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}

	// No goroutine outlives the Conn.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before Start, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}

	logMu.Lock()
	defer logMu.Unlock()
	if len(logs) != 2 || !strings.Contains(logs[0], strconv.Quote(path)) || !strings.Contains(logs[0], `"-T" "-e" "none"`) ||
		!strings.Contains(logs[1], "exited") {
		t.Errorf("log lines %q", logs)
	}
}

// TestStartArgs checks the argv the child receives.
func TestStartArgs(t *testing.T) {
	t.Parallel()
	path := fakeSSH(t, `for a in "$@"; do printf '%s\n' "$a"; done`)
	c := start(t, Options{SSH: []string{path, "-o", "ProxyCommand=ssh -W %h:%p jump"}, Destination: "me@vpn", RemoteCommand: "sshvpn --remote --mtu 1400"})
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := "-o\nProxyCommand=ssh -W %h:%p jump\n-T\n-e\nnone\nme@vpn\nsshvpn --remote --mtu 1400\n"
	if string(out) != want {
		t.Errorf("child got args\n%s\nwant\n%s", out, want)
	}
}

func TestStartExitStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		stdout    string   // what Read delivers before the error
		status    int      // 0: Read ends with io.EOF
		want      []string // in the error text
		stderr    string   // in Options.Stderr
		waitFirst bool     // let the child exit before reading
	}{
		{name: "command not found",
			body:   `echo "bash: sshvpn: command not found" >&2; exit 127`,
			status: 127, want: []string{"install sshvpn", "--remote-cmd", `"sshvpn --remote"`},
			stderr: "bash: sshvpn: command not found\n"},
		{name: "command not found, read after exit", waitFirst: true,
			body:   `echo "bash: sshvpn: command not found" >&2; exit 127`,
			status: 127, want: []string{"install sshvpn", "--remote-cmd"}},
		{name: "connect failure",
			body:   `echo "ssh: connect to host example.invalid port 22: Connection refused" >&2; exit 255`,
			status: 255, want: []string{"failed to connect"}, stderr: "Connection refused"},
		{name: "connect failure, read after exit", waitFirst: true,
			body: `echo "ssh: connect to host example.invalid port 22: Connection refused" >&2; exit 255`, status: 255, want: []string{"failed to connect"}},
		// Nothing on stderr: no "ssh's own message is above" when nothing is.
		{name: "status 255 after the remote's log only", waitFirst: true,
			body: `echo 'level=INFO msg="tunnel up" side=remote' >&2; exit 255`, status: 255, want: []string{"255 and no message"}},
		{name: "status 255 without a message", waitFirst: true,
			body: `exit 255`, status: 255, want: []string{"255 and no message", "killed by a signal"}},
		{name: "not executable", body: `exit 126`, status: 126, want: []string{"not executable"}},
		{name: "other status", body: `printf 'SSHVPN/1\n'; exit 3`, stdout: "SSHVPN/1\n", status: 3, want: []string{"exited with status 3"}},
		{name: "output then failure, read after exit", waitFirst: true,
			body: `printf 'SSHVPN/1\n'; printf 'partial'; exit 1`, stdout: "SSHVPN/1\npartial", status: 1, want: []string{"status 1"}},
		{name: "clean exit", body: `printf 'SSHVPN/1\n'; exit 0`, stdout: "SSHVPN/1\n"},
		{name: "clean exit, read after exit", waitFirst: true,
			body: `printf 'SSHVPN/1\n\005\000\000\002no'; exit 0`, stdout: "SSHVPN/1\n\x05\x00\x00\x02no"},
		{name: "large output, read after exit", waitFirst: false,
			body: `head -c 200000 /dev/zero; exit 0`, stdout: string(make([]byte, 200000))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stderr := &syncBuffer{}
			c := start(t, Options{SSH: []string{fakeSSH(t, tt.body)}, Stderr: stderr})
			if tt.waitFirst {
				waitExited(t, c, 5*time.Second)
			}
			t0 := time.Now()
			var out bytes.Buffer
			_, err := io.Copy(&out, c) // io.Copy turns io.EOF into nil
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("reading took %v", d)
			}
			if out.String() != tt.stdout {
				t.Errorf("read %q, want %q", short(out.String()), short(tt.stdout))
			}
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("Read ended with %v, want io.EOF", err)
				}
				if c.Err() != nil {
					t.Errorf("Err() = %v", c.Err())
				}
				return
			}
			var ee *ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("Read ended with %v (%T), want an *ExitError", err, err)
			}
			if ee.Status != tt.status || ee.Signaled || ee.RemoteCommand != "sshvpn --remote" {
				t.Errorf("ExitError %+v, want status %d", ee, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !errors.As(c.Err(), &ee) || ee.Status != tt.status {
				t.Errorf("Err() = %v", c.Err())
			}
			if err := c.wait(context.Background()); !errors.As(err, &ee) || ee.Status != tt.status {
				t.Errorf("Wait() = %v", err)
			}
			// A Write to the dead child reports how it died.
			if _, err := c.Write([]byte("x")); !errors.As(err, &ee) {
				t.Errorf("Write after exit: %v, want an *ExitError", err)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestStartNotFound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ssh  string
	}{
		{"name not in PATH", "sshvpn-test-no-such-ssh-client"},
		{"missing path", filepath.Join(t.TempDir(), "no", "ssh")},
	}
	for _, tt := range tests {
		c, err := Start(Options{SSH: []string{tt.ssh, "-v"}, Destination: "host", RemoteCommand: "sshvpn --remote"})
		if err == nil {
			c.Close()
			t.Errorf("%s: Start succeeded", tt.name)
			continue
		}
		msg := err.Error()
		for _, w := range []string{"spawn: ", strconv.Quote(tt.ssh), "not found", "--ssh-cmd"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, msg, w)
			}
		}
	}
}

func TestStartNotExecutable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ssh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Start(Options{SSH: []string{path}, Destination: "host"})
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded")
	}
	if !strings.HasPrefix(err.Error(), "spawn: ") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q", err)
	}
}

// TestCloseStubborn checks that Close ends a child that ignores the end of
// its stdin, by SIGTERM or, if that is ignored too, SIGKILL, and that it
// unblocks a pending Read.
func TestCloseStubborn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     string
		min, max time.Duration
		signaled bool
	}{
		// sleep does not read stdin; SIGTERM after the 3 s grace.
		{"ignores EOF", "exec sleep 60", 2500 * time.Millisecond, 5 * time.Second, true},
		// The ignored SIGTERM survives exec; SIGKILL after 3+2 s.
		{"ignores EOF and TERM", "trap '' TERM; exec sleep 60", 4500 * time.Millisecond, 8 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := start(t, Options{SSH: []string{fakeSSH(t, tt.body)}})
			pid := c.cmd.Process.Pid
			rerr := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 10))
				rerr <- err
			}()
			time.Sleep(100 * time.Millisecond) // let the shell set its trap
			t0 := time.Now()
			done := make(chan struct{})
			go func() {
				c.Close()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return within 10s")
			}
			d := time.Since(t0)
			t.Logf("Close took %v", d)
			if d < tt.min || d > tt.max {
				t.Errorf("Close took %v, want %v to %v", d, tt.min, tt.max)
			}
			if !gone(pid) {
				t.Errorf("child %d still exists after Close", pid)
			}
			select {
			case err := <-rerr:
				if err == nil {
					t.Error("pending Read returned no error")
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not unblock a pending Read")
			}
			var ee *ExitError
			if err := c.Err(); !errors.As(err, &ee) || ee.Signaled != tt.signaled || !strings.Contains(err.Error(), "signal") {
				t.Errorf("Err() = %v", err)
			}
		})
	}
}

func TestStderrOption(t *testing.T) {
	t.Parallel()
	stderr := &syncBuffer{}
	c := start(t, Options{SSH: []string{fakeSSH(t, `echo "Warning: Permanently added 'host' to the list of known hosts." >&2; exec cat`)}, Stderr: stderr})
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	c.Close()
	if got := stderr.String(); got != "Warning: Permanently added 'host' to the list of known hosts.\n" {
		t.Errorf("stderr %q", got)
	}
}

// TestStderrHeldOpen: a process that ssh leaves behind (a ProxyCommand, a
// ControlPersist master) may keep ssh's stderr open. That must not delay the
// exit status past ssh's own exit, nor hang Close.
func TestStderrHeldOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	c := start(t, Options{
		SSH:    []string{fakeSSH(t, `sleep 30 </dev/null >/dev/null & echo $! >`+pidfile+`; exit 3`)},
		Stderr: &syncBuffer{},
	})
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	t0 := time.Now()
	_, err := io.ReadAll(c)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 3 {
		t.Errorf("Read ended with %v after %v, want an *ExitError with status 3", err, time.Since(t0))
	}
	t0 = time.Now()
	c.Close()
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestWaitContext(t *testing.T) {
	t.Parallel()
	c := start(t, Options{SSH: []string{fakeSSH(t, "exec cat")}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a running child: %v", err)
	}
	c.Close()
	if err := c.wait(context.Background()); err != nil {
		t.Errorf("Wait after Close: %v", err)
	}
}

func TestExitErrorTemporary(t *testing.T) {
	for _, tt := range []struct {
		e    ExitError
		want bool
	}{
		{ExitError{Status: 255, Message: "ssh: connect to host 192.0.2.2 port 22: Connection refused"}, true},
		{ExitError{Status: 255, Message: "kex_exchange_identification: read: Connection reset by peer"}, true},
		{ExitError{Status: 255, Message: "ssh: connect to host 192.0.2.2 port 22: Connection timed out"}, true},
		{ExitError{Status: 255}, true},
		{ExitError{Status: -1, Signaled: true}, true},
		{ExitError{Status: 255, Message: "root@192.0.2.2: Permission denied (publickey)."}, false},
		{ExitError{Status: 255, Message: "Host key verification failed."}, false},
		{ExitError{Status: 127}, false},
		{ExitError{Status: 1}, false},
	} {
		if got := tt.e.Temporary(); got != tt.want {
			t.Errorf("%+v: Temporary() = %v, want %v", tt.e, got, tt.want)
		}
	}
}

// TestExitErrorShown: a message ssh printed already is not said again,
// and the advice fits the failure.
func TestExitErrorShown(t *testing.T) {
	e := &ExitError{Status: 255, Message: "root@192.0.2.2: Permission denied (publickey).", Shown: true, Destination: "root@gw"}
	msg := e.Error()
	if strings.Contains(msg, "Permission denied") || !strings.Contains(msg, "said why above") || !strings.Contains(msg, "ssh-add -l") || !strings.Contains(msg, "ssh -v root@gw") {
		t.Errorf("shown: %q", msg)
	}
	e.Shown = false
	if msg := e.Error(); !strings.Contains(msg, "Permission denied (publickey)") {
		t.Errorf("not shown: %q", msg)
	}
	e.Message = "ssh: connect to host gw port 22: Connection refused"
	if msg := e.Error(); !strings.HasSuffix(msg, "ssh -v root@gw shows why") {
		t.Errorf("refused: %q", msg)
	}
}
