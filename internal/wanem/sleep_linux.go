package wanem

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// sleepUntil waits for t, false if ctx ended first. It sleeps in the
// kernel (nanosleep, with high-resolution timers) rather than on a Go
// timer, which the runtime's poller may fire a millisecond late: the delay
// of a 40 ms link must not grow by 5%.
func sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		ts := unix.NsecToTimespec(int64(min(d, 10*time.Millisecond)))
		unix.Nanosleep(&ts, nil)
	}
}
