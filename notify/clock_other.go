//go:build !linux

package notify

// monotonicUsec reports false: there is no systemd to compare it with.
func monotonicUsec() (int64, bool) { return 0, false }
