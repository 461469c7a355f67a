// Package pool hands each of many concurrent sessions on one server its own
// pair of tunnel addresses from the prefixes an admin names with --pool.
//
// A pool prefix such as 198.18.8.0/24 gives the server its first host
// address (198.18.8.1) on every session's device, and each client one
// address of its own (198.18.8.2, .3, ...) with the pool's prefix length, so
// clients reach each other through the server when it forwards. Several
// prefixes (one IPv4, one IPv6) are allocated in step: lease i takes the i-th
// client address of each.
//
// Leases are files in a state directory, claimed under an exclusive flock so
// that concurrent sessions never share one. A lease records its holder's pid
// and process start time; it is freed by Release, and a lease whose holder
// died without releasing it is taken over by the next session.
package pool

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxLeases caps a pool's size, whatever its prefixes allow.
const MaxLeases = 1 << 16

// Pool allocates leases from prefixes.
type Pool struct {
	dir      string
	prefixes []netip.Prefix
	size     int
	key      string
}

// ErrFull is returned by Acquire when every lease is held.
var ErrFull = errors.New("pool: every address in the pool is in use")

// New returns a pool over prefixes, keeping its leases under dir (created
// with mode 0700 if missing).
func New(dir string, prefixes []netip.Prefix) (*Pool, error) {
	if len(prefixes) == 0 {
		return nil, errors.New("pool: no prefixes")
	}
	p := &Pool{dir: dir, size: MaxLeases}
	var keys []string
	seen := map[bool]bool{}
	for _, pf := range prefixes {
		pf = pf.Masked()
		if seen[pf.Addr().Is4()] {
			return nil, fmt.Errorf("pool: give at most one IPv4 and one IPv6 --pool (got another: %v)", pf)
		}
		seen[pf.Addr().Is4()] = true
		hostBits := pf.Addr().BitLen() - pf.Bits()
		n := MaxLeases
		if hostBits < 17 {
			n = 1<<hostBits - 2 // network address and the server's
			if pf.Addr().Is4() {
				n-- // broadcast
			}
		}
		if n < 1 {
			return nil, fmt.Errorf("pool: %v is too small: it needs room for the server and at least one client", pf)
		}
		p.size = min(p.size, n)
		p.prefixes = append(p.prefixes, pf)
		keys = append(keys, strings.ReplaceAll(pf.String(), "/", "_"))
	}
	p.key = strings.Join(keys, "+")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pool: state directory: %w", err)
	}
	return p, nil
}

// Size is how many leases the pool holds.
func (p *Pool) Size() int { return p.size }

// Lease is one session's share of the pool.
type Lease struct {
	Index  int
	Server []netip.Prefix // the server's address in each prefix, with the prefix's length
	Client []netip.Prefix // the client's address in each prefix, with the prefix's length
	file   string
}

// Acquire claims the lowest free lease for the calling process.
func (p *Pool) Acquire() (*Lease, error) {
	lock, err := os.OpenFile(filepath.Join(p.dir, "pool.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("pool: locking %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	me := holder(os.Getpid())
	for i := range p.size {
		file := filepath.Join(p.dir, fmt.Sprintf("lease-%s-%d", p.key, i))
		b, err := os.ReadFile(file)
		if err == nil && alive(string(b)) {
			continue
		}
		if err := os.WriteFile(file, []byte(me), 0o600); err != nil {
			return nil, fmt.Errorf("pool: %w", err)
		}
		return p.lease(i, file), nil
	}
	return nil, fmt.Errorf("%w (%d leases, %v)", ErrFull, p.size, p.prefixes)
}

func (p *Pool) lease(i int, file string) *Lease {
	l := &Lease{Index: i, file: file}
	for _, pf := range p.prefixes {
		l.Server = append(l.Server, netip.PrefixFrom(nth(pf.Addr(), 1), pf.Bits()))
		l.Client = append(l.Client, netip.PrefixFrom(nth(pf.Addr(), 2+i), pf.Bits()))
	}
	return l
}

// nth returns base + n.
func nth(base netip.Addr, n int) netip.Addr {
	v := new(big.Int).SetBytes(base.AsSlice())
	v.Add(v, big.NewInt(int64(n)))
	b := v.FillBytes(make([]byte, base.BitLen()/8))
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Release frees the lease. Releasing twice is harmless.
func (l *Lease) Release() error {
	if err := os.Remove(l.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pool: %w", err)
	}
	return nil
}

// holder describes a process as "pid starttime", which stays unique across
// pid reuse.
func holder(pid int) string {
	return fmt.Sprintf("%d %s\n", pid, startTime(pid))
}

// startTime is field 22 of /proc/PID/stat, the process's start time in clock
// ticks since boot; empty if the process does not exist.
func startTime(pid int) string {
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

// alive reports whether the holder recorded in a lease file still runs.
func alive(rec string) bool {
	f := strings.Fields(rec)
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false
	}
	return startTime(pid) == f[1]
}
