package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// binary is the sshvpn binary built once for all tests.
var binary string

// prereqErr says why the end-to-end tests cannot run here, if they cannot.
var prereqErr error

func TestMain(m *testing.M) {
	prereqErr = checkPrereqs()
	dir, err := os.MkdirTemp("", "sshvpn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if prereqErr == nil {
			binary = filepath.Join(dir, "sshvpn")
			out, err := exec.Command("go", "build", "-o", binary, "../cmd/sshvpn").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building sshvpn: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func checkPrereqs() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	for _, p := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen", "ip", "ping"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not installed (apt-get install openssh-server iproute2 iputils-ping)", p)
		}
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("/dev/net/tun: %v", err)
	}
	f.Close()
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns: %v: %s", err, out)
	}
	return nil
}

// requirePrereqs skips the test when the machine cannot run end-to-end
// tests, and fails it when CI is set: CI must run them.
func requirePrereqs(t *testing.T) {
	t.Helper()
	if prereqErr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("end-to-end prerequisites missing in CI: %v", prereqErr)
	}
	t.Skipf("end-to-end prerequisites missing: %v", prereqErr)
}

// requireTool is requirePrereqs for a tool only some tests need.
func requireTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI (apt-get install %s)", tool, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s)", tool, pkg)
}

// lab is one scripts/lab.sh lab: client, server and lan namespaces and an sshd.
type lab struct {
	t         *testing.T
	name, dir string
	env       map[string]string
	Client    string // namespace names
	Server    string
	LAN       string
	SSHConfig string
	Bin       string
	User      string      // the unprivileged account, with LAB_USER
	Env       []string    // extra environment for sshvpn clients
	Syslog    *syncBuffer // what the server's processes sent to the system log
	labEnv    []string    // lab.sh's settings, for later lab.sh commands
}

// userName returns a fresh name for a lab's unprivileged account.
func userName() string {
	return fmt.Sprintf("svt%du%d", os.Getpid()%100000, labSeq.Add(1))
}

// setKeys makes the lab key's authorized_keys line for user the output of
// "sshvpn authorized-key ARGS... PUBKEY": a restrict,command= forced command.
func (l *lab) setKeys(user string, args ...string) string {
	l.t.Helper()
	argv := append([]string{"authorized-key", "--sshvpn", l.Bin}, args...)
	argv = append(argv, filepath.Join(l.dir, "id_ed25519.pub"))
	out, err := exec.Command(l.Bin, argv...).Output()
	if err != nil {
		l.t.Fatalf("sshvpn authorized-key: %v", err)
	}
	file := filepath.Join(l.dir, "authorized_keys."+user)
	if err := os.WriteFile(file, out, 0o600); err != nil {
		l.t.Fatal(err)
	}
	if user != "root" {
		if out, err := exec.Command("chown", user, file).CombinedOutput(); err != nil {
			l.t.Fatalf("chown: %v %s", err, out)
		}
	}
	l.t.Logf("authorized_keys.%s: %s", user, out)
	return string(out)
}

var labSeq atomic.Int32

// newLab brings a lab up and registers its teardown, which also checks that
// nothing of it is left. env adds lab.sh settings such as "LAB_CLIENTS=3".
func newLab(t *testing.T, env ...string) *lab {
	t.Helper()
	requirePrereqs(t)
	name := fmt.Sprintf("svt%d-%d", os.Getpid()%100000, labSeq.Add(1))
	dir := filepath.Join(os.TempDir(), name)
	l := &lab{t: t, name: name, dir: dir, Syslog: new(syncBuffer)}
	sock := listenSyslog(t, l.Syslog)
	cmd := exec.Command("../scripts/lab.sh", "up")
	l.labEnv = append([]string{"LAB_NAME=" + name, "LAB_DIR=" + dir, "SSHVPN_BIN=" + binary, "LAB_SYSLOG_SOCKET=" + sock}, env...)
	cmd.Env = append(os.Environ(), l.labEnv...)
	out, err := cmd.CombinedOutput()
	t.Cleanup(l.down)
	if err != nil {
		t.Fatalf("lab.sh up: %v\n%s", err, out)
	}
	l.env = readEnv(t, filepath.Join(dir, "env"))
	l.Client, l.Server, l.LAN = l.env["LAB_CLIENT_NS"], l.env["LAB_SERVER_NS"], l.env["LAB_LAN_NS"]
	l.SSHConfig, l.Bin = l.env["LAB_SSH_CONFIG"], l.env["LAB_BIN"]
	l.User = l.env["LAB_USER"]
	return l
}

// restartSSHD ends the lab's sshd and all its sessions and starts it again.
func (l *lab) restartSSHD() {
	l.t.Helper()
	cmd := exec.Command("../scripts/lab.sh", "restart-sshd")
	cmd.Env = append(os.Environ(), l.labEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("lab.sh restart-sshd: %v\n%s", err, out)
	}
}

func (l *lab) down() {
	cmd := exec.Command("../scripts/lab.sh", "down")
	cmd.Env = append(os.Environ(), "LAB_NAME="+l.name, "LAB_DIR="+l.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Errorf("lab.sh down: %v\n%s", err, out)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), l.name+"-") {
		l.t.Errorf("namespaces left behind after lab.sh down:\n%s", out)
	}
	if _, err := os.Stat(l.dir); err == nil {
		l.t.Errorf("lab dir %s left behind", l.dir)
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && !strings.HasPrefix(k, "#") && !strings.HasPrefix(k, "export") {
			env[k] = strings.Trim(v, `"'`)
		}
	}
	return env
}

// in runs a command in namespace ns and returns its combined output.
func (l *lab) in(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// mustIn runs a command in ns and fails the test if it fails.
func (l *lab) mustIn(ns string, args ...string) string {
	l.t.Helper()
	out, err := l.in(ns, args...)
	if err != nil {
		l.t.Fatalf("in %s: %q: %v\n%s", ns, args, err, out)
	}
	return out
}

// ping sends count pings from ns to addr, with extra ping flags.
func (l *lab) ping(ns, addr string, extra ...string) error {
	args := append([]string{"ping", "-c", "3", "-i", "0.2", "-W", "2"}, extra...)
	out, err := l.in(ns, append(args, addr)...)
	if err != nil {
		return fmt.Errorf("ping %s from %s %v: %v\n%s", addr, ns, extra, err, out)
	}
	return nil
}

// vpn is a running sshvpn client.
type vpn struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

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

// start runs "sshvpn -v --log-format logfmt -e 'ssh -F cfg' ARGS..." in
// the client namespace.
// The client is stopped at the end of the test if still running.
func (l *lab) start(args ...string) *vpn {
	l.t.Helper()
	return l.startIn(l.Client, args...)
}

// startIn is start in namespace ns.
func (l *lab) startIn(ns string, args ...string) *vpn {
	l.t.Helper()
	argv := []string{"netns", "exec", ns, l.Bin, "-v"}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--log-format") }) {
		argv = append(argv, "--log-format", "logfmt") // what the tests match
	}
	if !slices.Contains(args, "--native") { // --native takes -F itself; -e is the ssh binary's
		argv = append(argv, "-e", "ssh -F "+l.SSHConfig)
	}
	return l.exec(ns, append(argv[3:], args...)...)
}

// exec runs exactly "ARGV..." in namespace ns (argv[0] is the sshvpn
// binary, or another program), with the lab's extra environment l.Env,
// and stops it at the end of the test if it still runs.
func (l *lab) exec(ns string, argv ...string) *vpn {
	l.t.Helper()
	v := &vpn{cmd: exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...), log: new(syncBuffer), done: make(chan struct{})}
	v.cmd.Stdout, v.cmd.Stderr = v.log, v.log
	v.cmd.Env = append(os.Environ(), l.Env...)
	// Its own process group, like a job in a shell: Ctrl-C reaches
	// sshvpn and its ssh together (see TestCtrlC).
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := v.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { v.err = v.cmd.Wait(); close(v.done) }()
	l.t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			v.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-v.done:
			case <-time.After(10 * time.Second):
				v.cmd.Process.Kill()
				<-v.done
			}
		}
		l.t.Logf("sshvpn client log:\n%s", v.log)
	})
	return v
}

// up starts the client and waits until both sides report the tunnel up.
func (l *lab) up(args ...string) *vpn {
	l.t.Helper()
	return l.upIn(l.Client, args...)
}

// upIn is up in namespace ns.
func (l *lab) upIn(ns string, args ...string) *vpn {
	l.t.Helper()
	v := l.startIn(ns, args...)
	l.waitUp(v, `msg="tunnel up"`)
	return v
}

// waitUp waits until v's log has two lines with up (the client's tunnel up
// and the server's), failing the test if v exits first or 20 s pass.
func (l *lab) waitUp(v *vpn, up string) {
	l.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s := v.log.String()
		if strings.Count(s, up) >= 2 {
			return
		}
		select {
		case <-v.done:
			l.t.Fatalf("sshvpn exited before the tunnel came up: %v\n%s", v.err, s)
		case <-deadline:
			l.t.Fatalf("tunnel not up after 20s:\n%s", s)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wait waits for the client to exit and returns its error and log.
func (v *vpn) wait(t *testing.T, d time.Duration) (error, string) {
	t.Helper()
	select {
	case <-v.done:
		return v.err, v.log.String()
	case <-time.After(d):
		t.Fatalf("sshvpn still running after %v:\n%s", d, v.log)
		return nil, ""
	}
}

// stop sends SIGTERM and waits for the client to exit.
func (v *vpn) stop(t *testing.T) (error, string) {
	t.Helper()
	v.cmd.Process.Signal(syscall.SIGTERM)
	return v.wait(t, 15*time.Second)
}

// inNetns runs f on an OS thread switched into namespace ns. Sockets created
// by f stay in ns after the thread switches back.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("netns %s: %v", ns, err)
	}
	defer h.Close()
	// On the test's own goroutine, so that f may call t.Fatal: its
	// thread stays in ns until f returns or fails.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns set %s: %v", ns, err)
	}
	defer func() {
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked, and Go discards it with the goroutine
	}()
	f()
}

// eventually polls cond until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pidsOf lists the processes in namespace ns whose command name is comm.
func (l *lab) pidsOf(ns, comm string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			pids = append(pids, pid)
		}
	}
	return pids
}

// listenSyslog receives the lab server's system log: a unixgram socket that
// lab.sh puts where the server's processes look for /dev/log. Each message
// is one line of buf.
func listenSyslog(t *testing.T, buf *syncBuffer) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sshvpn-syslog-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // the lab's unprivileged account logs too
	path := filepath.Join(dir, "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 64<<10)
		for {
			n, err := pc.Read(b)
			if err != nil {
				return
			}
			fmt.Fprintf(buf, "%s\n", bytes.TrimRight(b[:n], "\n"))
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
		os.RemoveAll(dir)
		t.Logf("server syslog:\n%s", buf)
	})
	return path
}

// syslogHas waits up to d for a line of the server's system log that
// contains every one of subs.
func (l *lab) syslogHas(d time.Duration, subs ...string) bool {
	return eventually(d, func() bool {
		for _, line := range strings.Split(l.Syslog.String(), "\n") {
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				return true
			}
		}
		return false
	})
}
