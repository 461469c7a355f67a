package main

import (
	"os"
	"runtime"
)

// oneThread runs the process's Go code on one thread (GOMAXPROCS=1)
// unless the user set GOMAXPROCS. A side that leaves the encryption to
// an ssh process only copies packets between the device and the pipes,
// a goroutine per direction handing packets to a sender: on more
// threads, each handoff is a futex wakeup of another thread. Measured on
// the lab's veth (2 cores, iperf3 through the tunnel, both sides): one
// thread cut the context switches per MB by 40% and the CPU per GB by a
// quarter, and the throughput rose by as much. ssh itself runs on one
// thread. The in-process transport (--native) encrypts, and keeps every
// core.
func oneThread() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
