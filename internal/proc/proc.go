// Package proc identifies processes across pid reuse: a Holder is a pid
// together with the process's start time, so a record that names a process
// which has exited is recognised as stale even when another process now has
// its pid.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Holder is a running (or once running) process.
type Holder struct {
	PID   int
	Start string // field 22 of /proc/PID/stat: start time in clock ticks since boot
}

// Self is the calling process.
func Self() Holder {
	pid := os.Getpid()
	return Holder{PID: pid, Start: StartTime(pid)}
}

// String renders h as "pid starttime", the form Parse reads.
func (h Holder) String() string {
	return fmt.Sprintf("%d %s", h.PID, h.Start)
}

// Parse reads a Holder written by String; anything else is the zero Holder,
// which is never alive.
func Parse(s string) Holder {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Holder{}
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return Holder{}
	}
	return Holder{PID: pid, Start: f[1]}
}

// Alive reports whether the process h describes still runs.
func (h Holder) Alive() bool {
	return h.PID > 0 && h.Start != "" && StartTime(h.PID) == h.Start
}

// StartTime is field 22 of /proc/PID/stat, the process's start time in clock
// ticks since boot; empty if the process does not exist.
func StartTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// NetNS identifies the calling thread's network namespace (as the target of
// /proc/thread-self/ns/net, such as "net:[4026531840]"), or "" where it
// cannot be read.
func NetNS() string {
	s, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		s, _ = os.Readlink("/proc/self/ns/net")
	}
	return s
}

// UIDs are the real and effective user ids of process pid, from
// /proc/PID/status; ok is false if the process does not exist.
func UIDs(pid int) (real, effective int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	for line := range strings.Lines(string(b)) {
		rest, found := strings.CutPrefix(line, "Uid:")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, 0, false
		}
		r, err1 := strconv.Atoi(f[0])
		e, err2 := strconv.Atoi(f[1])
		return r, e, err1 == nil && err2 == nil
	}
	return 0, 0, false
}

// OwnedBy reports whether the process h describes still runs as account
// uid, really and effectively.
func (h Holder) OwnedBy(uid int) bool {
	r, e, ok := UIDs(h.PID)
	return ok && r == uid && e == uid && h.Alive()
}

// NetNSName is the name "ip netns" knows the network namespace id (as
// NetNS gives it, "net:[4026532375]") by: a file under /run/netns bound
// to it. "" when none is.
func NetNSName(id string) string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return ""
	}
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Stat("/run/netns/"+e.Name(), &st) == nil && fmt.Sprintf("net:[%d]", st.Ino) == id {
			return e.Name()
		}
	}
	return ""
}
