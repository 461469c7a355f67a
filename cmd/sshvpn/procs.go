package main

import (
	"os"
	"runtime"
)

// oneThread runs the process's Go code on one thread (GOMAXPROCS=1)
// unless the user set GOMAXPROCS. A side that leaves encryption to ssh
// only copies packets, handing each burst to a sender goroutine; on more
// threads each handoff is a futex wakeup of another. On the lab's veth one
// thread cut context switches per MB by 40% and CPU per GB by a quarter
// (README, Performance). --native encrypts, and keeps every core.
func oneThread() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
