package e2e

import (
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/registry"
)

// Tests of what the README claims and no other test checked (issue 16's
// audit).

// TestLogFormatJSON: --log-format json writes one JSON object per line,
// the client's own and the server's relayed ones (side "remote"), with one
// type for each field whichever side wrote it.
func TestLogFormatJSON(t *testing.T) {
	l := newLab(t)
	v := l.start(append(tunnelArgs, "--log-format", "json", "root@server")...)
	var recs []map[string]any
	parse := func() {
		recs = nil
		for _, line := range strings.Split(v.log.String(), "\n") {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("a line that is not JSON: %q: %v", line, err)
			}
			recs = append(recs, m)
		}
	}
	up := func(side string) bool {
		for _, m := range recs {
			if m["msg"] == "tunnel up" && (side == "" && m["side"] == nil || m["side"] == side) {
				return true
			}
		}
		return false
	}
	if !eventually(20*time.Second, func() bool { parse(); return up("") && up("remote") }) {
		t.Fatalf("no JSON 'tunnel up' from both sides:\n%s", v.log)
	}
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	parse()
	// One schema on both sides: the same field has the same type in the
	// client's line and in the server's, relayed.
	for _, m := range recs {
		if m["msg"] != "tunnel up" {
			continue
		}
		_, local := m["local"].(string)
		_, remote := m["remote"].(string)
		_, mtu := m["mtu"].(float64)
		_, offloads := m["offloads"].(string)
		if !local || !remote || !mtu || !offloads {
			t.Errorf("a 'tunnel up' of side %v with local %T, remote %T, mtu %T, offloads %T; want strings and a number",
				m["side"], m["local"], m["remote"], m["mtu"], m["offloads"])
		}
	}
	for _, m := range recs {
		if _, ok := m["level"].(string); !ok {
			t.Errorf("a record without a level: %v", m)
		}
		if _, ok := m["msg"].(string); !ok {
			t.Errorf("a record without a message: %v", m)
		}
	}
}

// TestRateDownload: the server's --rate in bytes holds for what it sends
// the client too: a download through a 2 Mbit/s limit drops packets over
// it (counted by reason on the server), and TCP still delivers every byte.
func TestRateDownload(t *testing.T) {
	l := newLab(t)
	l.setKeys("root", append(policyArgs, "--rate", "2Mbit")...)
	v := l.up(append(tunnelArgs, "root@server")...)
	conn, srv := l.tcpPair(net.JoinHostPort(serverV4, "5001"))
	if sent, got := transfer(t, srv, conn, 1<<20, 9); sent != got { // server -> client
		t.Errorf("the download's checksum does not match")
	}
	conn.Close()
	srv.Close()
	var remote *registry.Record
	if !eventually(10*time.Second, func() bool {
		for _, r := range l.status(exec.Command("nsenter", "-t", l.env["LAB_SSHD_PID"], "-m", l.Bin, "status", "--all", "--json")) {
			if r.Side == registry.SideRemote && r.Status != nil && r.Status.Drops["over_rate"] > 0 {
				remote = &r
				return true
			}
		}
		return false
	}) {
		t.Errorf("the server counted no packets over the rate limit after a 1 MiB download at 2 Mbit/s")
	}
	if remote != nil {
		t.Logf("server drops: %v", remote.Status.Drops)
	}
	if err, log := v.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
}

// TestSharedPinnedRoute: two tunnels whose routes cover the same SSH
// server share its pinned route; it stays while either is up and goes
// with the last.
func TestSharedPinnedRoute(t *testing.T) {
	l := newLab(t)
	pinned := func() bool {
		return strings.Contains(l.mustIn(l.Client, "ip", "route", "show", "192.0.2.2", "proto", "115"), "192.0.2.2 dev wan0")
	}
	a := l.up("--addr", "198.18.4.1/30", "--peer-addr", "198.18.4.2/30", "--dev", "vpna", "--route", "192.0.2.0/25", "root@server")
	b := l.up("--addr", "198.18.5.1/30", "--peer-addr", "198.18.5.2/30", "--dev", "vpnb", "--route", "192.0.2.0/26", "root@server")
	if !pinned() {
		t.Fatalf("the SSH server's route is not pinned:\n%s", l.mustIn(l.Client, "ip", "route"))
	}
	if err, log := a.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	if !pinned() {
		t.Errorf("the first tunnel took the pinned route with it while the second is up:\n%s", l.mustIn(l.Client, "ip", "route"))
	}
	if err := l.ping(l.Client, "198.18.5.2"); err != nil {
		t.Errorf("the second tunnel: %v", err)
	}
	if err, log := b.stop(t); err != nil {
		t.Fatalf("exit %v:\n%s", err, log)
	}
	if pinned() {
		t.Errorf("the pinned route stayed after the last tunnel:\n%s", l.mustIn(l.Client, "ip", "route"))
	}
}
