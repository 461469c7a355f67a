// Package benchreport turns the raw figures scripts/bench.sh collects into
// its reports: the medians over the rounds, the ratios between contenders,
// a Markdown table and a JSON document, for one or more runs (one per WAN
// profile). The script measures; this package counts and writes, so that
// no report is assembled in bash.
//
// The input is text, a line per figure, fields separated by tabs:
//
//	set	KEY	VALUE             a setting of the run (profile, rounds, ...)
//	val	METRIC	CONTENDER	DIR	VALUE
//
// DIR is up, down or - (a figure of the contender, such as its idle RTT);
// VALUE is a number, or "fail". Unknown lines are errors.
package benchreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The metrics bench.sh records.
const (
	Mbps       = "mbps"         // iperf3 throughput at the receiver
	CPUPerGB   = "cpu_s_per_gb" // CPU seconds of the tunnel's processes per 10^9 bytes
	RTT        = "rtt_ms"       // idle round trip through the tunnel, median of the pings
	RTTP90     = "rtt_p90_ms"   // likewise, 90th percentile
	RTTMax     = "rtt_max_ms"   // likewise, the slowest
	LoadP50    = "load_p50_ms"  // round trip during the transfer, median
	LoadP99    = "load_p99_ms"  // round trip during the transfer, 99th percentile
	WANDropped = "wan_dropped"  // packets the link emulator dropped (loss and queue)
	Retrans    = "retransmits"  // the inner TCP's retransmissions (iperf3, up only)
	direction  = "up down -"
)

// Run is one bench run: its settings and its figures, per metric,
// contender and direction, in the order they came.
type Run struct {
	Settings   map[string]string
	Contenders []string // in the order they first appeared
	values     map[key][]float64
	failed     map[key]int
}

type key struct{ metric, contender, dir string }

// Parse reads one run.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{Settings: map[string]string{}, values: map[key][]float64{}, failed: map[key]int{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "set" && len(f) == 3:
			run.Settings[f[1]] = f[2]
		case f[0] == "val" && len(f) == 5:
			k := key{f[1], f[2], f[3]}
			if !strings.Contains(direction, k.dir) || k.dir == "" {
				return nil, fmt.Errorf("benchreport: line %d: direction %q (up, down or -)", n, k.dir)
			}
			if !slices.Contains(run.Contenders, k.contender) {
				run.Contenders = append(run.Contenders, k.contender)
			}
			if f[4] == "fail" || f[4] == "-" {
				run.failed[k]++
				continue
			}
			v, err := strconv.ParseFloat(f[4], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("benchreport: line %d: value %q", n, f[4])
			}
			run.values[k] = append(run.values[k], v)
		default:
			return nil, fmt.Errorf("benchreport: line %d: %q is neither a setting nor a value", n, line)
		}
	}
	return run, sc.Err()
}

// Median is the median of a metric's values for a contender and
// direction; false when there is none.
func (r *Run) Median(metric, contender, dir string) (float64, bool) {
	v := slices.Clone(r.values[key{metric, contender, dir}])
	if len(v) == 0 {
		return 0, false
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

// Values are a metric's values, in the order they came.
func (r *Run) Values(metric, contender, dir string) []float64 {
	return slices.Clone(r.values[key{metric, contender, dir}])
}

// Ratio is the ratio of two contenders' median throughput in one
// direction.
func (r *Run) Ratio(a, b, dir string) (float64, bool) {
	x, ok1 := r.Median(Mbps, a, dir)
	y, ok2 := r.Median(Mbps, b, dir)
	if !ok1 || !ok2 || y == 0 {
		return 0, false
	}
	return x / y, true
}

// Profile names the run's WAN profile ("veth" without one).
func (r *Run) Profile() string {
	if p := r.Settings["profile"]; p != "" {
		return p
	}
	return "veth"
}

// num formats a figure for Markdown: "-" when there is none.
func num(v float64, ok bool, prec int) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// WriteMarkdown writes one table for all runs: a row per profile,
// contender and direction, with the ratios to direct TCP over the same
// link, to ssh -w and to the raw SSH channel, where they were measured.
func WriteMarkdown(w io.Writer, runs []*Run) error {
	b := &strings.Builder{}
	b.WriteString("| profile | contender | dir | Mbit/s | / direct | / ssh -w | / raw ssh | idle RTT ms p50 / p90 / max | under load p50 ms | p99 ms | cpu-s/GB |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range runs {
		for _, c := range r.Contenders {
			for _, d := range []string{"up", "down"} {
				mbps, ok := r.Median(Mbps, c, d)
				if !ok && r.failed[key{Mbps, c, d}] == 0 {
					continue // not measured
				}
				rd, okd := r.Ratio(c, "direct", d)
				rw, okw := r.Ratio(c, "ssh-w", d)
				rr, okrr := r.Ratio(c, "raw-ssh", d)
				rtt, okr := r.Median(RTT, c, "-")
				rtt90, okr90 := r.Median(RTTP90, c, "-")
				rttMax, okrm := r.Median(RTTMax, c, "-")
				idle := num(rtt, okr, 2)
				if okr90 || okrm {
					idle += " / " + num(rtt90, okr90, 2) + " / " + num(rttMax, okrm, 2)
				}
				p50, ok50 := r.Median(LoadP50, c, d)
				p99, ok99 := r.Median(LoadP99, c, d)
				cpu, okc := r.Median(CPUPerGB, c, d)
				fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Profile(), c, d,
					num(mbps, ok, 0), num(rd, okd, 2), num(rw, okw, 2), num(rr, okrr, 2), idle, num(p50, ok50, 1), num(p99, ok99, 1), num(cpu, okc, 2))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// figure is a median with the values it came from, for JSON.
type figure struct {
	Median *float64  `json:"median"`
	Values []float64 `json:"values"`
	Failed int       `json:"failed,omitempty"`
}

// WriteJSON writes every run: its settings, and per contender and
// direction every metric's median and values.
func WriteJSON(w io.Writer, runs []*Run) error {
	type contender struct {
		Name    string                       `json:"name"`
		Figures map[string]map[string]figure `json:"figures"` // metric -> dir -> figure
	}
	type run struct {
		Profile    string            `json:"profile"`
		Settings   map[string]string `json:"settings"`
		Contenders []contender       `json:"contenders"`
	}
	var out struct {
		Units map[string]string `json:"units"`
		Runs  []run             `json:"runs"`
	}
	out.Units = map[string]string{Mbps: "Mbit/s (10^6 bit/s) at the receiver", CPUPerGB: "CPU seconds per 10^9 bytes",
		RTT: "ms, idle, median of the pings", RTTP90: "ms, idle, 90th percentile", RTTMax: "ms, idle, the slowest ping", LoadP50: "ms, ping every 100 ms during the transfer", LoadP99: "ms, likewise", WANDropped: "packets", Retrans: "segments"}
	for _, r := range runs {
		jr := run{Profile: r.Profile(), Settings: r.Settings}
		for _, c := range r.Contenders {
			jc := contender{Name: c, Figures: map[string]map[string]figure{}}
			for k, v := range r.values {
				if k.contender != c {
					continue
				}
				if jc.Figures[k.metric] == nil {
					jc.Figures[k.metric] = map[string]figure{}
				}
				m, _ := r.Median(k.metric, c, k.dir)
				jc.Figures[k.metric][k.dir] = figure{Median: &m, Values: v, Failed: r.failed[k]}
			}
			for k, n := range r.failed {
				if k.contender != c || len(r.values[k]) > 0 {
					continue
				}
				if jc.Figures[k.metric] == nil {
					jc.Figures[k.metric] = map[string]figure{}
				}
				jc.Figures[k.metric][k.dir] = figure{Values: []float64{}, Failed: n}
			}
			jr.Contenders = append(jr.Contenders, jc)
		}
		out.Runs = append(out.Runs, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
