//go:build !linux

package wanem

import (
	"context"
	"time"
)

// sleepUntil waits for t, false if ctx ended first (a Go timer: the lab
// runs on Linux, where sleep_linux.go sleeps in the kernel).
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
