package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics: the server's admin runs "sshvpn metrics --listen", a scrape
// over HTTP gets the Prometheus text format, which the Prometheus parser
// reads: one remote session, with the client's labels and its traffic.
func TestMetrics(t *testing.T) {
	l := newLab(t)
	v := l.up(append(tunnelArgs, "root@server")...)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+os.Getpid()%20000)
	// In sshd's mount namespace, where the lab's sessions keep their
	// records (the root network namespace's loopback).
	m := exec.Command("nsenter", "-t", l.env["LAB_SSHD_PID"], "-m", l.Bin, "metrics", "--listen", addr)
	var out syncBuffer
	m.Stdout, m.Stderr = &out, &out
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Process.Signal(syscall.SIGTERM)
		if err := m.Wait(); err != nil {
			t.Errorf("sshvpn metrics --listen after SIGTERM: %v\n%s", err, out.String())
		}
	})
	var body string
	if !eventually(20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200 && strings.Contains(body, "sshvpn_session_received_bytes_total{") &&
			!strings.Contains(body, "sshvpn_session_received_bytes_total{client_address=\"192.0.2.1\",device=\"tun0\",key=\"\",side=\"remote\",tunnel_address=\"198.18.0.2\",user=\"root\"} 0\n")
	}) {
		t.Fatalf("no scrape with the session's traffic:\n%s", body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus parser: %v\n%s", err, body)
	}
	sessions := fams["sshvpn_sessions"]
	found := false
	for _, mt := range sessions.GetMetric() {
		for _, lb := range mt.GetLabel() {
			if lb.GetName() == "side" && lb.GetValue() == "remote" && mt.GetGauge().GetValue() >= 1 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no remote session counted:\n%s", body)
	}
	rx := fams["sshvpn_session_received_bytes_total"]
	labels := map[string]string{}
	for _, mt := range rx.GetMetric() {
		for _, lb := range mt.GetLabel() {
			labels[lb.GetName()] = lb.GetValue()
		}
	}
	if labels["client_address"] != "192.0.2.1" || labels["tunnel_address"] != serverV4 || labels["user"] != "root" || !strings.HasPrefix(labels["key"], "SHA256:") {
		t.Errorf("the session's labels: %v", labels)
	}
	v.stop(t)
}
