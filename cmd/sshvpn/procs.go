package main

import (
	"os"
	"runtime"
)

// oneThread runs the Go code on one thread (GOMAXPROCS=1) unless the user
// set GOMAXPROCS: a side that leaves encryption to ssh hands each burst to
// a sender goroutine, and on more threads each handoff wakes another
// (README, Performance). --native encrypts, and keeps every core.
func oneThread() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
