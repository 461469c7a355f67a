package usage

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseQuota(t *testing.T) {
	for in, want := range map[string]Quota{
		"50GB/30d":  {50e9, 30 * 24 * time.Hour},
		"500MiB/1w": {500 << 20, 7 * 24 * time.Hour},
		"1000/12h":  {1000, 12 * time.Hour},
		"2TB/365d":  {2e12, 365 * 24 * time.Hour},
		"10KB/90m":  {10e3, 90 * time.Minute},
	} {
		if got, err := ParseQuota(in); err != nil || got != want {
			t.Errorf("ParseQuota(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "50GB", "/30d", "50GB/", "0GB/1d", "50XB/1d", "50GB/0d", "50GB/-1d", "50GB/x", "-1GB/1d"} {
		if _, err := ParseQuota(bad); err == nil {
			t.Errorf("ParseQuota(%q) accepted it", bad)
		}
	}
}

// TestAccounting: concurrent sessions of one key add up exactly; a quota
// is spent once the period's bytes reach it, and a period that is over
// starts anew.
func TestAccounting(t *testing.T) {
	dir := t.TempDir()
	q := Quota{Bytes: 10000, Period: time.Hour}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if _, err := Begin(dir, "SHA256:k", "alice", q, now); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := Add(dir, "SHA256:k", 100, 10, q, now); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	m, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := m["SHA256:k"]
	if e.BytesIn != 8000 || e.BytesOut != 800 || e.Sessions != 1 || e.User != "alice" || e.PeriodBytes != 8800 {
		t.Fatalf("after 80 concurrent additions: %+v", e)
	}
	if Spent(e, q) != "" {
		t.Errorf("spent at 8800 of 10000")
	}
	e, _ = Add(dir, "SHA256:k", 1200, 0, q, now.Add(time.Minute))
	if why := Spent(e, q); !strings.Contains(why, "is spent") || !strings.Contains(why, "renews on 2026-12-03 13:00 UTC") {
		t.Errorf("at %d of 10000: %q", e.PeriodBytes, why)
	}
	if e, _ = Begin(dir, "SHA256:k", "alice", q, now.Add(2*time.Minute)); e.Sessions != 1 || Spent(e, q) == "" {
		t.Errorf("a session the quota refuses was counted: %+v", e)
	}
	e, _ = Begin(dir, "SHA256:k", "alice", q, now.Add(2*time.Hour))
	if e.PeriodBytes != 0 || Spent(e, q) != "" || e.BytesIn != 9200 || e.Sessions != 2 {
		t.Errorf("a new period: %+v", e)
	}
	var b strings.Builder
	if err := Show(&b, Sorted(map[string]Entry{"SHA256:k": e})); err != nil || !strings.Contains(b.String(), "SHA256:k  alice  9.2KB") {
		t.Errorf("Show: %v\n%s", err, b.String())
	}
}
