package e2e

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/registry"
)

// TestStreams: --streams 3 stripes the tunnel over three ssh connections
// (three sshvpn --remote on the server, one multi-queue device on each
// side). Four TCP flows with checksums run while one connection's ssh is
// killed: without --reconnect the tunnel goes on with two, with a
// warning; with it, the connection comes back. Nothing is lost either way.
func TestStreams(t *testing.T) {
	for _, tt := range []struct {
		name      string
		reconnect bool
		native    bool
		kill      int // which ssh (in pid order) dies
	}{
		{"first stream killed", false, false, 0},
		{"reconnect, the first stream killed", true, false, 0},
		{"reconnect, another stream killed", true, false, 2},
		{"native", false, true, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t)
			args := []string{"--streams", "3", "--dev", "vpn0"}
			if tt.reconnect {
				args = append(args, "--reconnect")
			}
			if tt.native {
				args = l.nativeArgs(append(args, "root@server")...)
			} else {
				args = slices.Concat(tunnelArgs, args, []string{"root@server"})
			}
			v := l.up(args...)
			if !eventually(15*time.Second, func() bool { return len(l.pidsOf(l.Server, "sshvpn")) == 3 }) {
				t.Fatalf("sshvpn processes on the server: %v, want 3\n%s", l.pidsOf(l.Server, "sshvpn"), v.log)
			}
			for _, ns := range []string{l.Client, l.Server} {
				dev := "vpn0"
				if ns == l.Server {
					dev = l.serverDev(t)
				}
				if out := l.mustIn(ns, "ip", "-d", "link", "show", dev); !strings.Contains(out, "multi_queue") {
					t.Errorf("%s in %s is not multi-queue:\n%s", dev, ns, out)
				}
			}
			// One record per side, the client's with a line per stream.
			var c *registry.Record
			if !eventually(10*time.Second, func() bool {
				c, _ = l.statusOf(v.cmd.Process.Pid)
				if c == nil || c.Status == nil || len(c.Status.Streams) != 3 {
					return false
				}
				for _, s := range c.Status.Streams {
					if s.State != registry.StateUp {
						return false
					}
				}
				return true
			}) {
				t.Errorf("the client's status: %+v, want three streams up", c)
			}
			// The server: one record of the session, with its three
			// streams up.
			var remotes []registry.Record
			if !eventually(10*time.Second, func() bool {
				remotes = nil
				for _, r := range l.status(exec.Command("nsenter", "-t", l.env["LAB_SSHD_PID"], "-m", l.Bin, "status", "--all", "--json")) {
					if r.Side == registry.SideRemote && len(r.PeerAddrs) > 0 && r.PeerAddrs[0].String() == clientV4+"/30" {
						remotes = append(remotes, r)
					}
				}
				return len(remotes) == 1 && remotes[0].Status != nil && len(remotes[0].Status.Streams) == 3 &&
					!slices.ContainsFunc(remotes[0].Status.Streams, func(s registry.StreamStatus) bool { return s.State != registry.StateUp })
			}) {
				t.Errorf("the session's records on the server: %+v, want one with three streams up", remotes)
			}
			var ssh []int
			if !tt.native {
				ssh = children(t, v.cmd.Process.Pid, "ssh")
				if len(ssh) != 3 {
					t.Fatalf("ssh children: %v, want 3", ssh)
				}
			}
			var wg sync.WaitGroup
			for i := range 4 {
				conn, srv := l.tcpPair(net.JoinHostPort(serverV4, strconv.Itoa(5101+i)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					sent, got := transfer(t, &slowConn{Conn: conn, w: &slowWriter{w: conn, rate: 2 << 20}}, srv, 6<<20, uint64(10+i))
					if sent != got {
						t.Errorf("flow %d: checksum mismatch", i)
					}
				}()
			}
			if tt.kill >= 0 {
				time.Sleep(time.Second) // into the transfers
				syscall.Kill(ssh[tt.kill], syscall.SIGKILL)
			}
			wg.Wait()
			if tt.kill < 0 {
				// Four flows on three streams: the client placed one on
				// each at least (tunnel.Stripe), where the kernel's hash
				// alone leaves a stream empty more than one time in two.
				// (The record is refreshed every few seconds.)
				if !eventually(10*time.Second, func() bool {
					c, _ = l.statusOf(v.cmd.Process.Pid)
					return c != nil && c.Status != nil && len(c.Status.Streams) == 3 && c.Status.BytesOut >= 24<<20
				}) {
					t.Errorf("the client's status after the transfers: %+v", c)
				} else {
					for i, s := range c.Status.Streams {
						if s.BytesOut < 4<<20 {
							t.Errorf("stream %d carried %d bytes of the 24 MiB sent over three streams, want a flow's 6 MiB: %+v", i+1, s.BytesOut, c.Status.Streams)
						}
					}
				}
			}
			log := v.log.String()
			switch {
			case tt.kill >= 0 && !tt.reconnect:
				if !strings.Contains(log, "ended; the tunnel goes on with 2") {
					t.Errorf("no warning that the tunnel goes on with two streams:\n%s", log)
				}
			case tt.reconnect:
				if !eventually(20*time.Second, func() bool { return len(children(t, v.cmd.Process.Pid, "ssh")) == 3 }) {
					t.Errorf("the killed stream did not come back:\n%s", v.log)
				}
			}
			if err := l.ping(l.Client, serverV4); err != nil {
				t.Error(err)
			}
			if err, log := v.stop(t); err != nil {
				t.Errorf("exit %v:\n%s", err, log)
			}
			if !eventually(10*time.Second, func() bool { return len(l.pidsOf(l.Server, "sshvpn")) == 0 }) {
				t.Errorf("sshvpn processes left on the server: %v", l.pidsOf(l.Server, "sshvpn"))
			}
		})
	}
}

// TestStreamsRefused: a connection that presents a striped session's Join
// with a wrong secret, or the right one from another key, is refused and
// logged; the right secret from the session's key joins.
func TestStreamsRefused(t *testing.T) {
	l := newLab(t)
	// A second key, with the same forced command as the first.
	other := filepath.Join(l.dir, "id_other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(other + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile(filepath.Join(l.dir, "authorized_keys.root"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "authorized_keys.root"), append(keys, pub...), 0o600); err != nil {
		t.Fatal(err)
	}
	first := l.rawRemote(t, "")
	defer first.close()
	first.hello(t, &framing.Hello{Role: "client", Mode: "tun", Streams: 2, Acks: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix(clientV4 + "/30")}, PeerAddrs: []netip.Prefix{netip.MustParsePrefix(serverV4 + "/30")}})
	answer, err := first.answer()
	if err != nil || !answer.Join.Valid() {
		t.Fatalf("the first stream's answer: %+v, %v; want a Join", answer, err)
	}
	for _, tt := range []struct {
		name, key string
		join      framing.Join
		want      string
	}{
		{"wrong secret", "", framing.Join{Session: answer.Join.Session, Secret: strings.Repeat("0", framing.SecretLen)}, "a stream with a wrong secret"},
		{"unknown session", "", framing.Join{Session: strings.Repeat("a", framing.SessionLen), Secret: answer.Join.Secret}, "no such striped session"},
		{"another key", other, *answer.Join, "a stream from another key"},
	} {
		c := l.rawRemote(t, tt.key)
		j := tt.join
		c.hello(t, &framing.Hello{Role: "client", Mode: "tun", Join: &j, Acks: true})
		_, err := c.answer()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tt.name, err, tt.want)
		}
		c.close()
		if !l.syslogHas(5*time.Second, tt.want) && tt.name != "unknown session" {
			t.Errorf("%s: the server's log does not say %q:\n%s", tt.name, tt.want, l.Syslog)
		}
	}
	// The session's own key and secret join.
	c := l.rawRemote(t, "")
	c.hello(t, &framing.Hello{Role: "client", Mode: "tun", Join: answer.Join, Acks: true})
	if h, err := c.answer(); err != nil || h.Role != "server" {
		t.Errorf("the right secret: %+v, %v; want the server's answer", h, err)
	}
	c.close()
}

// rawConn is "ssh server sshvpn --remote" spoken to in Go.
type rawConn struct {
	cmd *exec.Cmd
	r   *framing.Reader
	w   *framing.Writer
	in  io.WriteCloser
}

// rawRemote runs ssh to the lab's server (with key, if set) and reads the
// server's preamble.
func (l *lab) rawRemote(t *testing.T, key string) *rawConn {
	t.Helper()
	args := []string{"netns", "exec", l.Client, "ssh", "-F", l.SSHConfig}
	if key != "" {
		args = append(args, "-i", key, "-o", "IdentitiesOnly=yes")
	}
	cmd := exec.Command("ip", append(args, "root@server", "sshvpn --remote")...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &rawConn{cmd: cmd, r: framing.NewReader(out), w: framing.NewWriter(in), in: in}
	if _, err := c.r.ReadPreamble(); err != nil {
		c.close()
		t.Fatalf("the server's preamble: %v", err)
	}
	return c
}

func (c *rawConn) hello(t *testing.T, h *framing.Hello) {
	t.Helper()
	if err := c.w.WritePreamble(); err != nil {
		t.Fatal(err)
	}
	if err := c.w.WriteHello(h); err != nil {
		t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// answer reads the server's Hello, or its refusal as an error.
func (c *rawConn) answer() (*framing.Hello, error) {
	typ, payload, err := c.r.ReadFrame()
	switch {
	case err != nil:
		return nil, err
	case typ == framing.TypeError:
		return nil, fmt.Errorf("refused: %s", payload)
	case typ != framing.TypeHello:
		return nil, fmt.Errorf("a frame of type %v, not a hello", typ)
	}
	return framing.ParseHello(payload)
}

func (c *rawConn) close() {
	c.in.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// children are the pids of parent's children named comm, in pid order.
func children(t *testing.T, parent int, comm string) []int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(parent), "-x", comm).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// serverDev is the name of the server's tunnel device: the one tun device
// in its namespace with the server's tunnel address.
func (l *lab) serverDev(t *testing.T) string {
	t.Helper()
	out := l.mustIn(l.Server, "ip", "-o", "-4", "addr", "show", "to", serverV4)
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("no device with %s on the server: %q", serverV4, out)
	}
	return f[1]
}

// TestStreamsPingTwice: over two streams, each side sends a ping over
// both, and the other drops the second copy: ping sees every reply once,
// and both sides count the copies they dropped.
func TestStreamsPingTwice(t *testing.T) {
	l := newLab(t)
	v := l.up(slices.Concat(tunnelArgs, []string{"--streams", "2", "--dev", "vpn0", "root@server"})...)
	var c *registry.Record
	if !eventually(15*time.Second, func() bool {
		c, _ = l.statusOf(v.cmd.Process.Pid)
		return c != nil && c.Status != nil && len(c.Status.Streams) == 2 &&
			!slices.ContainsFunc(c.Status.Streams, func(s registry.StreamStatus) bool { return s.State != registry.StateUp })
	}) {
		t.Fatalf("the client's status: %+v, want two streams up\n%s", c, v.log)
	}
	out, err := l.in(l.Client, "ping", "-c", "10", "-i", "0.2", "-W", "2", serverV4)
	if err != nil || !strings.Contains(out, " 10 received") || strings.Contains(out, "DUP!") {
		t.Errorf("ping through two streams (want 10 replies, no duplicates): %v\n%s", err, out)
	}
	if !eventually(10*time.Second, func() bool {
		c, _ = l.statusOf(v.cmd.Process.Pid)
		return c != nil && c.Status != nil && c.Status.Drops["second_copies"] >= 5
	}) {
		t.Errorf("the client's status: %+v, want the second copies of the replies dropped", c.Status)
	}
	if !eventually(10*time.Second, func() bool {
		for _, r := range l.status(exec.Command("nsenter", "-t", l.env["LAB_SSHD_PID"], "-m", l.Bin, "status", "--all", "--json")) {
			if r.Side == registry.SideRemote && r.Status != nil && r.Status.Drops["second_copies"] >= 5 {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no record on the server with the second copies of the pings dropped")
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
}
