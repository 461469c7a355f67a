// Package registry records the sshvpn sessions running on this machine, on
// both sides: one small JSON file per session in a state directory (by
// default /run/sshvpn), written atomically and removed when the session
// ends. A record names its process (pid and start time, so a record left by
// a process that was killed outright is recognised as stale and ignored) and
// its network namespace, and says what the session holds: its device,
// tunnel addresses, routes, and on the server the key and client it serves.
//
// The server reads the registry to refuse a session whose addresses another
// live session holds (or to replace that session when the admin allows it),
// and to count the sessions of one key; both sides read it to clean up
// routes that a killed session left behind. Whoever changes what the
// registry says about the machine holds its lock (Lock) while deciding.
//
// The state directory must belong to the account that runs sshvpn (or to
// root) and be writable by no one else; Open refuses any other, and makes
// it 0700 and its records 0600: a record names keys, addresses and
// accounts that are no one else's business. A record is trusted only where
// its file, its directory and the process it names all belong to the same
// account (the registry's owner); anything else in the directory is junk
// and is removed, as are the records of processes that are gone.
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/internal/statedir"
)

// DefaultDir is the state directory of root's sessions.
const DefaultDir = "/run/sshvpn"

// maxRecordSize caps how much of a record file is read.
const maxRecordSize = 64 << 10

// Sides of a session.
const (
	SideClient = "client"
	SideRemote = "remote"
)

// Route is a route a session added to the main table, recorded so that a
// later session can tell its own leftovers from another's live routes.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	Gw  netip.Addr   `json:"gw,omitzero"`
	Dev string       `json:"dev,omitempty"`
}

// Record describes one session.
type Record struct {
	Side    string    `json:"side"` // SideClient or SideRemote
	PID     int       `json:"pid"`
	Start   string    `json:"start"` // the process's start time, see package proc
	NetNS   string    `json:"netns"` // the network namespace it runs in
	Started time.Time `json:"started"`

	Dev       string         `json:"dev,omitempty"`
	Ifindex   int            `json:"ifindex,omitempty"`
	Addrs     []netip.Prefix `json:"addrs,omitempty"`      // this side's tunnel addresses
	PeerAddrs []netip.Prefix `json:"peer_addrs,omitempty"` // the other side's
	Routes    []netip.Prefix `json:"routes,omitempty"`     // networks it routes into its tunnel (claimed before they are added)
	Added     []Route        `json:"added,omitempty"`      // routes this session added

	// Remote side.
	Key   string `json:"key,omitempty"`   // the identity sessions are counted by (--max-sessions)
	User  string `json:"user,omitempty"`  // the account sshd started the session as
	Peer  string `json:"peer,omitempty"`  // client: the SSH server; remote: the SSH client (SSH_CONNECTION)
	Lease int    `json:"lease,omitempty"` // pool lease number + 1; 0 without a pool
	// Resume is the SHA-256 (hex) of the client's resume token: a new
	// session with the same token takes over from this one.
	Resume string `json:"resume,omitempty"`
	// Profile is the profile the client was started from (sshvpn up
	// NAME), if any.
	Profile string `json:"profile,omitempty"`
	// ProfileFile is the file it was read from.
	ProfileFile string `json:"profile_file,omitempty"`
	// Status is what the session says of itself, refreshed every few
	// seconds while it runs.
	Status *Status `json:"status,omitempty"`
}

// Session states.
const (
	StateConnecting   = "connecting"
	StateUp           = "up"
	StateReconnecting = "reconnecting"
)

// Status is a running session's state and counters, for sshvpn status.
type Status struct {
	State      string        `json:"state"`             // StateConnecting, StateUp or StateReconnecting
	Attempt    int           `json:"attempt,omitempty"` // reconnecting: failed attempts in a row
	Reason     string        `json:"reason,omitempty"`  // reconnecting: why the last connection ended
	Since      time.Time     `json:"since"`             // when State began
	MTU        int           `json:"mtu,omitempty"`
	RTT        time.Duration `json:"rtt_ns,omitempty"` // the last keepalive's round trip
	Reconnects int           `json:"reconnects,omitempty"`
	Offloads   string        `json:"offloads,omitempty"`
	PacketsOut uint64        `json:"packets_out"` // device -> peer
	BytesOut   uint64        `json:"bytes_out"`
	PacketsIn  uint64        `json:"packets_in"` // peer -> device
	BytesIn    uint64        `json:"bytes_in"`
	// Drops counts dropped packets by reason (only reasons with drops):
	// from_peer, to_peer (the anti-spoofing filter, offloads the peer
	// did not agree to), over_rate, tunnel_down (read while no
	// connection was up), malformed, queue_codel (waited too long in
	// sshvpn's queue), queue_full, second_copies (of pings and DNS
	// that a striped peer sent over two streams); and marked_ecn,
	// packets CE-marked instead of dropped.
	Drops map[string]uint64 `json:"drops,omitempty"`
	// Streams are the connections of a striped tunnel (--streams), in
	// order; the counters above are their sums.
	Streams []StreamStatus `json:"streams,omitempty"`
	Updated time.Time      `json:"updated"`
}

// StreamStatus is one connection of a striped tunnel.
type StreamStatus struct {
	State    string        `json:"state"` // StateUp, StateConnecting or StateReconnecting, or StateEnded
	RTT      time.Duration `json:"rtt_ns,omitempty"`
	BytesOut uint64        `json:"bytes_out"`
	BytesIn  uint64        `json:"bytes_in"`
	// HandedOver counts the packets another stream's queue read for this
	// one: the first packets of the flows placed on it.
	HandedOver uint64 `json:"handed_over,omitempty"`
}

// StateEnded is a stream of a striped tunnel that ended for good.
const StateEnded = "ended"

// Holder is the process that wrote r.
func (r *Record) Holder() proc.Holder { return proc.Holder{PID: r.PID, Start: r.Start} }

// Registry is one state directory.
type Registry struct {
	dir   string
	owner int  // the account whose records it holds
	own   bool // the caller's own registry (Open), not another account's (OpenOther)
}

// Open returns the registry of the effective user in dir, creating dir
// (mode 0700) if missing and taking group and other access away from one
// that an older sshvpn made 0755.
func Open(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: state directory %s (where sshvpn keeps its session records): %w", dir, err)
	}
	if err := CheckDir(dir); err != nil {
		return nil, err
	}
	euid := os.Geteuid()
	if fi, err := os.Lstat(dir); err == nil && statedir.Owner(fi) == euid && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	return &Registry{dir: dir, owner: euid, own: true}, nil
}

// OpenOther returns the registry of account uid in dir without creating
// it, for root to read that account's sessions: dir must be a real
// directory that uid owns and no one else can write to, and only records
// of uid's own processes in files of uid's count.
func OpenOther(dir string, uid int) (*Registry, error) {
	if err := statedir.CheckOther(dir, uid); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Registry{dir: dir, owner: uid}, nil
}

// Dir is the state directory.
func (r *Registry) Dir() string { return r.dir }

// CheckDir refuses a state directory that others could plant records or
// links in: it must be a real directory, owned by the effective user or
// root, and writable by no one else.
func CheckDir(dir string) error {
	if err := statedir.Check(dir, "use a directory owned by the account running sshvpn, writable by it alone"); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// Lock takes the registry's exclusive lock, for deciding on what the records
// say and acting on it without a concurrent session doing the same. It waits
// for the lock; unlock releases it.
func (r *Registry) Lock() (unlock func(), err error) {
	unlock, err = statedir.Lock(r.dir, "registry.lock")
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return unlock, nil
}

// List returns the records of live sessions in the calling thread's network
// namespace, oldest first. Records of processes that are gone are removed.
func (r *Registry) List() ([]Record, error) {
	all, err := r.ListAll()
	if err != nil {
		return nil, err
	}
	ns := proc.NetNS()
	var out []Record
	for _, rec := range all {
		if rec.NetNS == ns {
			out = append(out, rec)
		}
	}
	return out, nil
}

// ListAll is List for every network namespace. Files that are not records
// of the registry's owner (not a regular file, another account's file, not
// a record, misnamed, naming another account's process) are never trusted,
// nor are records whose process is gone; in the account's own registry
// they are removed, so that they are not judged again. A record that
// cannot be read for another reason (out of file descriptors, say) is
// skipped this time.
func (r *Registry) ListAll() ([]Record, error) {
	names, err := filepath.Glob(filepath.Join(r.dir, "session-*.json"))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var out []Record
	for _, name := range names {
		rec, err := r.readRecord(name)
		var junk junkError
		switch {
		case errors.As(err, &junk), err == nil && !rec.Holder().OwnedBy(r.owner):
			// Junk, or stale: its process was killed outright (a record
			// of a live process of another account is a lie).
			if r.own {
				os.Remove(name)
			}
			continue
		case err != nil:
			continue // gone since the listing (its session ended), or unreadable for now
		}
		out = append(out, rec)
	}
	slices.SortStableFunc(out, func(a, b Record) int { return a.Started.Compare(b.Started) })
	return out, nil
}

// junkError says that a file is not a record of the registry's account.
type junkError struct{ error }

func (e junkError) Unwrap() error { return e.error }

// readRecord reads the record in file name, which must be a regular file
// of the registry's owner that names its own process; a file that is not
// is reported as junkError.
func (r *Registry) readRecord(name string) (Record, error) {
	var rec Record
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return rec, junkError{fmt.Errorf("registry: %s is a symbolic link", name)}
	}
	if err != nil {
		return rec, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rec, err
	}
	if !fi.Mode().IsRegular() {
		return rec, junkError{fmt.Errorf("registry: %s is not a regular file", name)}
	}
	if owner := statedir.Owner(fi); owner != r.owner {
		return rec, junkError{fmt.Errorf("registry: %s belongs to uid %d, not to uid %d", name, owner, r.owner)}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, junkError{fmt.Errorf("registry: %s: %w", name, err)}
	}
	// The file name is the authority on whose record it is.
	if !strings.HasSuffix(name, fmt.Sprintf("session-%d.json", rec.PID)) {
		return rec, junkError{fmt.Errorf("registry: %s names another process (%d)", name, rec.PID)}
	}
	return rec, nil
}

// Entry is this process's record in the registry.
type Entry struct {
	reg     *Registry
	file    string
	mu      sync.Mutex // Update, Remove
	rec     Record
	removed bool
}

// Add records this process's session. It fills in PID, Start, NetNS and
// (if zero) Started.
func (r *Registry) Add(rec Record) (*Entry, error) {
	me := proc.Self()
	rec.PID, rec.Start, rec.NetNS = me.PID, me.Start, proc.NetNS()
	if rec.Started.IsZero() {
		rec.Started = time.Now().UTC().Truncate(time.Second)
	}
	e := &Entry{reg: r, file: filepath.Join(r.dir, fmt.Sprintf("session-%d.json", me.PID)), rec: rec}
	if err := e.write(); err != nil {
		return nil, err
	}
	return e, nil
}

// Update changes the record with f and writes it.
func (e *Entry) Update(f func(*Record)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return nil // the session is over: nothing to bring back
	}
	f(&e.rec)
	return e.write()
}

// Remove deletes the record; later Updates do nothing. Removing twice is
// harmless.
func (e *Entry) Remove() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removed = true
	if err := os.Remove(e.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// write replaces the record file atomically: readers see the old record or
// the new one, never a part.
func (e *Entry) write() error {
	b, err := json.MarshalIndent(e.rec, "", "  ")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	tmp, err := os.CreateTemp(e.reg.dir, ".session-*.tmp")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("registry: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("registry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("registry: writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), e.file); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}
