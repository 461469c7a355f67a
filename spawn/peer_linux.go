//go:build linux

package spawn

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// maxChildDepth is how many generations below ssh peerOfPID looks: ssh -J
// a,b runs "ssh -J a -W ... b", which runs "ssh -W ... a".
const maxChildDepth = 3

// tcpEstablished is TCP_ESTABLISHED as /proc/net/tcp prints its st column.
const tcpEstablished = 0x01

// peerOfPID returns the remote address of the first established TCP socket
// (in file descriptor order) held by process pid or, if it holds none, by its
// descendants, breadth first, down to maxChildDepth generations.
func peerOfPID(pid int) (netip.AddrPort, error) {
	row, err := connOfPID(pid)
	return row.remote, err
}

// connOfPID is peerOfPID's connection: both its addresses.
func connOfPID(pid int) (tcpRow, error) {
	level := []int{pid}
	var ppids map[int][]int // from scanning /proc, when task/*/children is missing
	for depth := 0; depth <= maxChildDepth && len(level) > 0; depth++ {
		var next []int
		for _, p := range level {
			row, ok, err := tcpConnOf(p)
			if err != nil && p == pid {
				return tcpRow{}, err
			}
			if ok {
				return row, nil
			}
			if depth == maxChildDepth {
				continue
			}
			kids, err := childrenOf(p)
			if errors.Is(err, fs.ErrNotExist) && p == pid {
				return tcpRow{}, err
			}
			if err != nil {
				// No CONFIG_PROC_CHILDREN: scan /proc/*/stat once.
				if ppids == nil {
					if ppids, err = scanParents(); err != nil {
						return tcpRow{}, err
					}
				}
				kids = ppids[p]
			}
			next = append(next, kids...)
		}
		level = next
	}
	return tcpRow{}, fmt.Errorf("ssh (pid %d) and its child processes hold no established TCP connection: %w", pid, ErrPeerUnknown)
}

// tcpConnOf returns the first established TCP connection, in file
// descriptor order, that process pid holds. ok is false if it holds none;
// err is set only if its file descriptors cannot be listed.
func tcpConnOf(pid int) (row tcpRow, ok bool, err error) {
	inodes, err := socketInodes(pid)
	if err != nil || len(inodes) == 0 {
		return tcpRow{}, false, err
	}
	conns := map[uint64]tcpRow{}
	for _, name := range []string{"tcp", "tcp6"} {
		// The tables of the process's network namespace; tcp6 is absent
		// when IPv6 is disabled.
		if err := readTCPTable(fmt.Sprintf("/proc/%d/net/%s", pid, name), conns); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return tcpRow{}, false, err
		}
	}
	for _, ino := range inodes {
		if row, found := conns[ino]; found {
			return row, true, nil
		}
	}
	return tcpRow{}, false, nil
}

// socketInodes returns the inodes of the sockets process pid holds, in the
// order of its file descriptors.
func socketInodes(pid int) ([]uint64, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing the file descriptors of ssh: %w", err)
	}
	type fdSock struct {
		fd  int
		ino uint64
	}
	var socks []fdSock
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		s, found := strings.CutPrefix(target, "socket:[")
		if !found || !strings.HasSuffix(s, "]") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
		if err != nil {
			continue
		}
		socks = append(socks, fdSock{fd, ino})
	}
	slices.SortFunc(socks, func(a, b fdSock) int { return a.fd - b.fd })
	inodes := make([]uint64, len(socks))
	for i, s := range socks {
		inodes[i] = s.ino
	}
	return inodes, nil
}

// readTCPTable adds the established connections of a /proc/net/tcp or tcp6
// file to conns, by socket inode.
func readTCPTable(path string, conns map[uint64]tcpRow) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for first := true; sc.Scan(); first = false {
		if first {
			continue // the header
		}
		row, err := parseTCPRow(sc.Text())
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if row.state == tcpEstablished && row.inode != 0 {
			conns[row.inode] = row
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// tcpRow is what connOfPID needs of a line of /proc/net/tcp or tcp6.
type tcpRow struct {
	local, remote netip.AddrPort
	state         uint8
	inode         uint64
}

// parseTCPRow decodes a line of /proc/net/tcp or tcp6:
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
//	0: 0100007F:0016 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000 1000 0 12345 ...
//
// Addresses are the 32-bit words of the address in network order, each
// printed as a host-order number; ports are printed as numbers.
func parseTCPRow(line string) (tcpRow, error) {
	f := strings.Fields(line)
	if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
		return tcpRow{}, fmt.Errorf("malformed line %q", line)
	}
	var r tcpRow
	var err error
	if r.local, err = parseHexAddrPort(f[1]); err != nil {
		return tcpRow{}, fmt.Errorf("local address in %q: %w", line, err)
	}
	if r.remote, err = parseHexAddrPort(f[2]); err != nil {
		return tcpRow{}, fmt.Errorf("remote address in %q: %w", line, err)
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return tcpRow{}, fmt.Errorf("state in %q: %w", line, err)
	}
	r.state = uint8(st)
	if r.inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
		return tcpRow{}, fmt.Errorf("inode in %q: %w", line, err)
	}
	return r, nil
}

// parseHexAddrPort decodes "0100007F:0016" (127.0.0.1:22) or its 32-digit
// IPv6 form. IPv4-mapped IPv6 addresses become IPv4.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	h, p, found := strings.Cut(s, ":")
	if !found || len(p) != 4 || (len(h) != 8 && len(h) != 32) {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	// Each 32-bit word was printed as a host-order number: put its bytes
	// back the way the kernel stored them.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed port in %q", s)
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// childrenOf returns the children of process pid from
// /proc/pid/task/*/children. The error wraps fs.ErrNotExist if pid does not
// exist, and is errors.ErrUnsupported if the kernel has no children files.
func childrenOf(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d/task/%s", pid, t.Name())); serr == nil {
				return nil, errors.ErrUnsupported // CONFIG_PROC_CHILDREN is off
			}
			continue // the thread ended
		}
		if err != nil {
			return nil, err
		}
		for _, w := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(w); err == nil {
				kids = append(kids, k)
			}
		}
	}
	slices.Sort(kids)
	return kids, nil
}

// scanParents maps each process to its children, from /proc/*/stat.
func scanParents() (map[int][]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	kids := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		if ppid, ok := parseStatPPID(string(b)); ok {
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	for _, k := range kids {
		slices.Sort(k)
	}
	return kids, nil
}

// parseStatPPID returns the parent pid from the text of /proc/pid/stat:
// "pid (comm) state ppid ...", where comm may hold blanks and parentheses.
func parseStatPPID(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
