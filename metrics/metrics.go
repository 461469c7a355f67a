// Package metrics exports the sessions of this machine in the Prometheus
// text format, for the admin of a server (or a client): "sshvpn metrics"
// prints them once (node_exporter's textfile collector, from a timer),
// "sshvpn metrics --listen ADDR" serves them for a scrape. The figures
// are read from the sessions' registry records (see package record) at
// each scrape; the names follow the WireGuard and OpenVPN exporters'
// style. The Prometheus client library encodes them.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/sshvpn/sshvpn/registry"
)

// Options say what the metrics carry.
type Options struct {
	// NoClientLabels leaves out the labels that name a client (user,
	// key, tunnel_address, client_address): one series per device.
	NoClientLabels bool
}

// collector reads the sessions at each collection.
type collector struct {
	records func() ([]registry.Record, error)
	opt     Options

	sessions, start, rtt, reconnects    *prometheus.Desc
	rxBytes, txBytes, rxPackets, txPkts *prometheus.Desc
	dropped                             *prometheus.Desc
}

// New is a Prometheus registry whose one collector reads the sessions
// records returns, at each gather.
func New(records func() ([]registry.Record, error), opt Options) *prometheus.Registry {
	labels := []string{"side", "device", "user", "key", "tunnel_address", "client_address"}
	if opt.NoClientLabels {
		labels = []string{"side", "device"}
	}
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), labels...), extra...), nil)
	}
	c := &collector{records: records, opt: opt,
		sessions:   prometheus.NewDesc("sshvpn_sessions", "Tunnels running on this machine, by side.", []string{"side"}, nil),
		start:      desc("sshvpn_session_start_time_seconds", "When the session began, in seconds since the epoch."),
		rtt:        desc("sshvpn_session_rtt_seconds", "The last keepalive's round trip."),
		reconnects: desc("sshvpn_reconnects_total", "Reconnects of the session."),
		rxBytes:    desc("sshvpn_session_received_bytes_total", "Bytes received from the peer and written to the device."),
		txBytes:    desc("sshvpn_session_sent_bytes_total", "Bytes read from the device and sent to the peer."),
		rxPackets:  desc("sshvpn_session_received_packets_total", "Packets received from the peer."),
		txPkts:     desc("sshvpn_session_sent_packets_total", "Packets sent to the peer."),
		dropped:    desc("sshvpn_dropped_packets_total", "Packets dropped, by reason.", "reason"),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sessions, c.start, c.rtt, c.reconnects, c.rxBytes, c.txBytes, c.rxPackets, c.txPkts, c.dropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	recs, err := c.records()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.sessions, err)
		return
	}
	count := map[string]float64{registry.SideClient: 0, registry.SideRemote: 0}
	for _, r := range recs {
		count[r.Side]++
		lv := c.labels(r)
		ch <- prometheus.MustNewConstMetric(c.start, prometheus.GaugeValue, float64(r.Started.UnixNano())/1e9, lv...)
		st := r.Status
		if st == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.rtt, prometheus.GaugeValue, st.RTT.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(st.Reconnects), lv...)
		ch <- prometheus.MustNewConstMetric(c.rxBytes, prometheus.CounterValue, float64(st.BytesIn), lv...)
		ch <- prometheus.MustNewConstMetric(c.txBytes, prometheus.CounterValue, float64(st.BytesOut), lv...)
		ch <- prometheus.MustNewConstMetric(c.rxPackets, prometheus.CounterValue, float64(st.PacketsIn), lv...)
		ch <- prometheus.MustNewConstMetric(c.txPkts, prometheus.CounterValue, float64(st.PacketsOut), lv...)
		for reason, n := range st.Drops {
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), append(lv, reason)...)
		}
	}
	for side, n := range count {
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, n, side)
	}
}

// labels are a session's label values, in the order of New's labels. A
// server's record names the client (its account, key and SSH address);
// a client's, the server it reached.
func (c *collector) labels(r registry.Record) []string {
	side, dev := r.Side, r.Dev
	if dev == "" {
		dev = "pid" + strconv.Itoa(r.PID)
	}
	if c.opt.NoClientLabels {
		return []string{side, dev}
	}
	addr := ""
	if len(r.Addrs) > 0 {
		addr = r.Addrs[0].Addr().String()
	}
	client := r.Peer
	if i := strings.IndexByte(client, ' '); i > 0 {
		client = client[:i] // "192.0.2.1 port 40000"
	}
	return []string{side, dev, r.User, r.Key, addr, client}
}

// Write gathers reg and writes the text format to w.
func Write(w io.Writer, reg prometheus.Gatherer) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// Serve serves reg's metrics at http://addr/metrics until ctx ends.
func Serve(ctx context.Context, addr string, reg prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
