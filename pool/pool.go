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
// died without releasing it is taken over by the next session. A lease file
// that exists but cannot be read counts as held, so the pool never hands out
// an address it cannot prove free; a lease path that is a symbolic link is an
// error.
//
// One pool needs one state directory, owned by the account that runs
// sshvpn --remote (root for pools, which create devices) and writable by no
// one else; New refuses any other. Pools of different accounts, or with
// overlapping prefixes, keep separate leases, so keeping their addresses
// apart is the admin's job.
package pool

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/internal/statedir"
)

// maxLeaseSize caps how much of a lease file is read; a holder record
// ("pid starttime\n") is far shorter.
const maxLeaseSize = 64

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
// with mode 0700 if missing). dir must be a directory, not a symbolic link,
// owned by the effective user or by root and writable by no one else.
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
		n := leasesIn(pf)
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
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	return p, nil
}

// Size is how many leases a pool over prefixes holds, or 0 if one of them
// has no room for a client.
func Size(prefixes []netip.Prefix) int {
	size := MaxLeases
	for _, pf := range prefixes {
		size = min(size, leasesIn(pf.Masked()))
	}
	return max(size, 0)
}

// leasesIn is how many clients fit in pf beside the server: all its
// addresses but the network address, the server's and (IPv4) broadcast.
func leasesIn(pf netip.Prefix) int {
	hostBits := pf.Addr().BitLen() - pf.Bits()
	if hostBits >= 17 {
		return MaxLeases
	}
	n := 1<<hostBits - 2
	if pf.Addr().Is4() {
		n--
	}
	return n
}

// checkDir refuses a state directory that others could plant leases or
// links in.
func checkDir(dir string) error {
	if err := statedir.Check(dir, "use a directory owned by the account running sshvpn --remote, mode 0700 (--state-dir)"); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	return nil
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
func (p *Pool) Acquire() (*Lease, error) { return p.AcquirePreferring(netip.Addr{}) }

// AcquirePreferring claims the lease whose client address is prefer if it is
// free (a reconnecting client asks for the address it had), else the lowest
// free lease.
func (p *Pool) AcquirePreferring(prefer netip.Addr) (*Lease, error) {
	unlock, err := statedir.Lock(p.dir, "pool.lock")
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	defer unlock()
	me := holder(os.Getpid())
	var unreadable []error
	order := make([]int, 0, p.size+1)
	if i, ok := p.index(prefer); ok {
		order = append(order, i)
	}
	for i := range p.size {
		order = append(order, i)
	}
	for _, i := range order {
		file := filepath.Join(p.dir, fmt.Sprintf("lease-%s-%d", p.key, i))
		rec, err := readLease(file)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// free
		case errors.Is(err, syscall.ELOOP):
			return nil, fmt.Errorf("pool: lease file %s is a symbolic link; remove it", file)
		case err != nil:
			unreadable = append(unreadable, err) // counts as held
			continue
		case alive(rec):
			continue
		}
		if err := writeLease(file, me); err != nil {
			return nil, err
		}
		return p.lease(i, file), nil
	}
	if len(unreadable) > 0 {
		return nil, fmt.Errorf("%w (%s, %v; %d of them unreadable, counted as held: %w)",
			ErrFull, leases(p.size), p.prefixes, len(unreadable), unreadable[0])
	}
	return nil, fmt.Errorf("%w (%s, %v)", ErrFull, leases(p.size), p.prefixes)
}

// leases says "1 lease" or "n leases".
func leases(n int) string {
	if n == 1 {
		return "1 lease"
	}
	return fmt.Sprintf("%d leases", n)
}

// readLease returns the first maxLeaseSize bytes of a lease file, refusing
// symbolic links (an error wrapping ELOOP) and anything but a regular file.
func readLease(file string) (string, error) {
	// O_NONBLOCK: opening a FIFO planted in place of a lease must not hang.
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := regular(f); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLeaseSize))
	if err != nil {
		return "", fmt.Errorf("pool: reading lease file %s: %w", file, err)
	}
	return string(b), nil
}

// writeLease records the holder rec in a lease file, never following a
// symbolic link.
func writeLease(file, rec string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("pool: lease file: %w", err)
	}
	if err := regular(f); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(rec); err != nil {
		f.Close()
		return fmt.Errorf("pool: writing lease file %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pool: writing lease file %s: %w", file, err)
	}
	return nil
}

// regular returns an error naming f unless it is an open regular file.
func regular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("pool: %s is a %s, not a regular file", f.Name(), kind(fi.Mode()))
	}
	return nil
}

// kind names a file type for error messages.
func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

func (p *Pool) lease(i int, file string) *Lease {
	l := &Lease{Index: i, file: file}
	for _, pf := range p.prefixes {
		l.Server = append(l.Server, netip.PrefixFrom(nth(pf.Addr(), 1), pf.Bits()))
		l.Client = append(l.Client, netip.PrefixFrom(nth(pf.Addr(), 2+i), pf.Bits()))
	}
	return l
}

// index returns the lease whose client address is a, if one is.
func (p *Pool) index(a netip.Addr) (int, bool) {
	for _, pf := range p.prefixes {
		if !a.IsValid() || a.Is4() != pf.Addr().Is4() || !pf.Contains(a) {
			continue
		}
		d := new(big.Int).Sub(new(big.Int).SetBytes(a.AsSlice()), new(big.Int).SetBytes(pf.Addr().AsSlice()))
		if !d.IsInt64() {
			return 0, false
		}
		i := int(d.Int64()) - 2
		if i >= 0 && i < p.size {
			return i, true
		}
	}
	return 0, false
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

// holder describes a process as "pid starttime\n", which stays unique
// across pid reuse.
func holder(pid int) string {
	return proc.Holder{PID: pid, Start: proc.StartTime(pid)}.String() + "\n"
}

// alive reports whether the holder recorded in a lease file still runs.
func alive(rec string) bool { return proc.Parse(rec).Alive() }
