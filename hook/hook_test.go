package hook

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a slog.Handler that keeps every record with its attributes,
// including those added by Logger.With.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]rec
	attrs []slog.Attr
}

type rec struct {
	msg   string
	attrs map[string]string
}

func newRecorder() *recorder {
	return &recorder{mu: new(sync.Mutex), recs: new([]rec)}
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	m := make(map[string]string)
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, rec{r.Message, m})
	return nil
}

func (h *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

func (h *recorder) WithGroup(string) slog.Handler { return h }

func (h *recorder) records() []rec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.recs)
}

// lines returns the messages logged from stream ("stdout" or "stderr").
func (h *recorder) lines(stream string) []string {
	var out []string
	for _, r := range h.records() {
		if r.attrs["stream"] == stream {
			out = append(out, r.msg)
		}
	}
	return out
}

// script writes an executable shell script with body to a temporary
// directory and returns its path.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func pfx(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func testEnv(side string) Env {
	return Env{
		Side:      side,
		Dev:       "tun7",
		Mode:      "tun",
		MTU:       1400,
		Addrs:     pfx("198.18.0.1/30", "fd73:7368:7670::1/64"),
		PeerAddrs: pfx("198.18.0.2/30", "fd73:7368:7670::2/64"),
		Routes:    pfx("10.1.0.0/16", "2001:db8:2::/64"),
		Server:    "192.0.2.10",
		Peer:      "192.0.2.20",
	}
}

// unsetenv removes key from the environment for the rest of the test.
func unsetenv(t *testing.T, key string) {
	t.Setenv(key, "") // restores the old value after the test
	os.Unsetenv(key)
}

func TestVars(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  Env
		typ  string
		want []string
	}{
		{"local", testEnv("local"), "up", []string{
			"SSHVPN_SIDE=local",
			"SSHVPN_SCRIPT_TYPE=up",
			"SSHVPN_DEV=tun7",
			"SSHVPN_MODE=tun",
			"SSHVPN_MTU=1400",
			"SSHVPN_ADDRS=198.18.0.1/30 fd73:7368:7670::1/64",
			"SSHVPN_PEER_ADDRS=198.18.0.2/30 fd73:7368:7670::2/64",
			"SSHVPN_ROUTES=10.1.0.0/16 2001:db8:2::/64",
			"SSHVPN_SCRIPT_CONTEXT=init",
			"SSHVPN_SERVER=192.0.2.10",
		}},
		{"remote", testEnv("remote"), "down", []string{
			"SSHVPN_SIDE=remote",
			"SSHVPN_SCRIPT_TYPE=down",
			"SSHVPN_DEV=tun7",
			"SSHVPN_MODE=tun",
			"SSHVPN_MTU=1400",
			"SSHVPN_ADDRS=198.18.0.1/30 fd73:7368:7670::1/64",
			"SSHVPN_PEER_ADDRS=198.18.0.2/30 fd73:7368:7670::2/64",
			"SSHVPN_ROUTES=10.1.0.0/16 2001:db8:2::/64",
			"SSHVPN_SCRIPT_CONTEXT=init",
			"SSHVPN_PEER=192.0.2.20",
		}},
		{"empty lists", Env{Side: "local", Dev: "tap0", Mode: "tap", MTU: 1500}, "up", []string{
			"SSHVPN_SIDE=local",
			"SSHVPN_SCRIPT_TYPE=up",
			"SSHVPN_DEV=tap0",
			"SSHVPN_MODE=tap",
			"SSHVPN_MTU=1500",
			"SSHVPN_ADDRS=",
			"SSHVPN_PEER_ADDRS=",
			"SSHVPN_ROUTES=",
			"SSHVPN_SCRIPT_CONTEXT=init",
			"SSHVPN_SERVER=",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.env.Vars(tc.typ); !slices.Equal(got, tc.want) {
				t.Errorf("Vars(%q) =\n%s\nwant\n%s", tc.typ, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestHookEnvironment checks what a real script sees, on both sides and for
// both hook types.
func TestHookEnvironment(t *testing.T) {
	// Inherited values must not show through, so clear the documented
	// names first; other SSHVPN_* variables in the test's environment (a
	// hook's own settings) are none of this test's business.
	for _, k := range []string{"SSHVPN_SIDE", "SSHVPN_SCRIPT_TYPE", "SSHVPN_DEV", "SSHVPN_MODE", "SSHVPN_MTU",
		"SSHVPN_ADDRS", "SSHVPN_PEER_ADDRS", "SSHVPN_ROUTES", "SSHVPN_SERVER", "SSHVPN_PEER"} {
		unsetenv(t, k)
	}
	t.Setenv("HOOKTEST_INHERITED", "kept")
	const dump = `env | grep -E '^(SSHVPN_(SIDE|SCRIPT_TYPE|DEV|MODE|MTU|ADDRS|PEER_ADDRS|ROUTES|SERVER|PEER)|HOOKTEST_INHERITED)=' | sort`
	common := map[string]string{
		"SSHVPN_DEV":         "tun7",
		"SSHVPN_MODE":        "tun",
		"SSHVPN_MTU":         "1400",
		"SSHVPN_ADDRS":       "198.18.0.1/30 fd73:7368:7670::1/64",
		"SSHVPN_PEER_ADDRS":  "198.18.0.2/30 fd73:7368:7670::2/64",
		"SSHVPN_ROUTES":      "10.1.0.0/16 2001:db8:2::/64",
		"HOOKTEST_INHERITED": "kept",
	}
	for _, tc := range []struct {
		side, has, hasNot, value string
	}{
		{"local", "SSHVPN_SERVER", "SSHVPN_PEER", "192.0.2.10"},
		{"remote", "SSHVPN_PEER", "SSHVPN_SERVER", "192.0.2.20"},
	} {
		t.Run(tc.side, func(t *testing.T) {
			h := newRecorder()
			r := &Runner{Up: script(t, "up", dump), Down: script(t, "down", dump), Log: slog.New(h)}
			if err := r.RunUp(testEnv(tc.side)); err != nil {
				t.Fatal(err)
			}
			if err := r.RunDown(""); err != nil {
				t.Fatal(err)
			}
			got := map[string]map[string]string{"up": {}, "down": {}}
			for _, rc := range h.records() {
				if rc.attrs["stream"] != "stdout" {
					continue
				}
				k, v, _ := strings.Cut(rc.msg, "=")
				got[rc.attrs["hook"]][k] = v
			}
			for _, typ := range []string{"up", "down"} {
				want := map[string]string{
					"SSHVPN_SIDE":        tc.side,
					"SSHVPN_SCRIPT_TYPE": typ,
					tc.has:               tc.value,
				}
				for k, v := range common {
					want[k] = v
				}
				for k, v := range want {
					if g, ok := got[typ][k]; !ok || g != v {
						t.Errorf("%s hook: %s=%q (set: %v), want %q", typ, k, g, ok, v)
					}
				}
				if v, ok := got[typ][tc.hasNot]; ok {
					t.Errorf("%s hook on the %s side: %s=%q is set, want it absent", typ, tc.side, tc.hasNot, v)
				}
				if len(got[typ]) != len(want) {
					t.Errorf("%s hook saw %d variables %v, want %d", typ, len(got[typ]), got[typ], len(want))
				}
			}
		})
	}
}

func TestOutputIsLogged(t *testing.T) {
	h := newRecorder()
	up := script(t, "up.sh", "echo out one; echo err one >&2; echo out two; printf 'err two' >&2")
	r := &Runner{Up: up, Log: slog.New(h)}
	if err := r.RunUp(testEnv("local")); err != nil {
		t.Fatal(err)
	}
	if got, want := h.lines("stdout"), []string{"out one", "out two"}; !slices.Equal(got, want) {
		t.Errorf("stdout lines logged: %q, want %q", got, want)
	}
	if got, want := h.lines("stderr"), []string{"err one", "err two"}; !slices.Equal(got, want) {
		t.Errorf("stderr lines logged: %q, want %q", got, want)
	}
	for _, rc := range h.records() {
		if rc.attrs["stream"] == "" {
			continue
		}
		if rc.attrs["hook"] != "up" || rc.attrs["script"] != up {
			t.Errorf("line %q logged with hook=%q script=%q, want up and %s", rc.msg, rc.attrs["hook"], rc.attrs["script"], up)
		}
	}
}

func TestNilLogger(t *testing.T) {
	r := &Runner{Up: script(t, "up", "echo hello; echo world >&2")}
	if err := r.RunUp(testEnv("local")); err != nil {
		t.Fatal(err)
	}
}

func TestFailingUp(t *testing.T) {
	h := newRecorder()
	marker := filepath.Join(t.TempDir(), "down-ran")
	up := script(t, "up", "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3")
	r := &Runner{Up: up, Down: script(t, "down", "touch "+marker), Log: slog.New(h)}
	err := r.RunUp(testEnv("remote"))
	if err == nil {
		t.Fatal("RunUp succeeded, want an error")
	}
	msg := err.Error()
	for _, want := range []string{"exit status 3", up, "line3 / line4 / line5 / line6 / line7"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "line2") {
		t.Errorf("error %q should carry only the last stderr lines", msg)
	}
	if got := len(h.lines("stderr")); got != 7 {
		t.Errorf("%d stderr lines logged, want all 7", got)
	}
	if err := r.RunDown(""); err != nil {
		t.Errorf("RunDown after a failed up: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the down hook ran although the up hook failed")
	}
}

func TestFailingDown(t *testing.T) {
	r := &Runner{Down: script(t, "down", "echo cannot undo >&2; exit 4")}
	if err := r.RunUp(testEnv("local")); err != nil {
		t.Fatal(err)
	}
	err := r.RunDown("")
	if err == nil || !strings.Contains(err.Error(), "exit status 4") || !strings.Contains(err.Error(), "cannot undo") {
		t.Errorf("RunDown = %v, want exit status 4 and the stderr line", err)
	}
}

// countingDown returns a down script that appends a line to a file per run,
// and a function that counts the runs.
func countingDown(t *testing.T) (string, func() int) {
	f := filepath.Join(t.TempDir(), "runs")
	s := script(t, "down", "echo ran >> "+f)
	return s, func() int {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "ran\n")
	}
}

func TestDownRunsOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		up    string // "" for none, "ok", "fail"
		runUp bool
		want  int
	}{
		{"after up", "ok", true, 1},
		{"no up script", "", true, 1},
		{"up never ran", "ok", false, 0},
		{"up failed", "fail", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down, runs := countingDown(t)
			r := &Runner{Down: down}
			switch tc.up {
			case "ok":
				r.Up = script(t, "up", "true")
			case "fail":
				r.Up = script(t, "up", "exit 1")
			}
			if tc.runUp {
				err := r.RunUp(testEnv("local"))
				if (err != nil) != (tc.up == "fail") {
					t.Fatalf("RunUp = %v", err)
				}
			}
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					if err := r.RunDown(""); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if err := r.RunDown(""); err != nil {
				t.Error(err)
			}
			if got := runs(); got != tc.want {
				t.Errorf("down hook ran %d times, want %d", got, tc.want)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"exec", "exec sleep 10"},
		// The shell waits for a child that holds stdout and stderr open.
		{"child", "echo starting; sleep 10; echo done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down, runs := countingDown(t)
			r := &Runner{Up: script(t, "up", tc.body), Down: down, Timeout: 200 * time.Millisecond}
			start := time.Now()
			err := r.RunUp(testEnv("local"))
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "--hook-timeout") {
				t.Errorf("RunUp = %v, want an error naming --hook-timeout", err)
			}
			if took > 2500*time.Millisecond {
				t.Errorf("RunUp returned after %v, want the hook killed after 200ms", took)
			}
			r.RunDown("")
			if runs() != 0 {
				t.Error("the down hook ran after the up hook timed out")
			}
		})
	}
}

// TestBackgroundChild: a hook that leaves a process behind which still holds
// its stdout and stderr must not keep sshvpn waiting for that process.
func TestBackgroundChild(t *testing.T) {
	r := &Runner{Up: script(t, "up", "sleep 10 & echo started"), Timeout: 5 * time.Second}
	start := time.Now()
	err := r.RunUp(testEnv("local"))
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("RunUp returned after %v (err %v), want it back about a second after the script exited", took, err)
	}
}

func TestMissingScript(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-script.sh")
	for _, tc := range []struct {
		name string
		r    *Runner
		call func(*Runner) error
	}{
		{"up", &Runner{Up: missing}, func(r *Runner) error { return r.RunUp(testEnv("local")) }},
		{"down", &Runner{Down: missing}, func(r *Runner) error {
			if err := r.RunUp(testEnv("local")); err != nil {
				return err
			}
			return r.RunDown("")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(tc.r)
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Errorf("got %v, want an error naming %s", err, missing)
			}
		})
	}
}

func TestNotExecutable(t *testing.T) {
	p := script(t, "up", "true")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	err := (&Runner{Up: p}).RunUp(testEnv("local"))
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("got %v, want an error naming %s", err, p)
	}
}
