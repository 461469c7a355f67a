package nat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/internal/statedir"
)

const (
	stateFile = "nat.json"
	lockFile  = "nat.lock"

	sysctlIPv4 = "net.ipv4.ip_forward"
	sysctlIPv6 = "net.ipv6.conf.all.forwarding"

	maxStateSize = 1 << 20
)

// state is what nat.json holds: per network namespace (as proc.NetNS names
// it), the forwarding sysctls' values before sshvpn turned them on, and the
// sessions that need them.
type state struct {
	Namespaces map[string]*nsState `json:"namespaces,omitempty"`
}

type nsState struct {
	// Saved maps a sysctl to the value the first session found.
	Saved    map[string]string `json:"saved,omitempty"`
	Sessions []sessionState    `json:"sessions,omitempty"`
}

type sessionState struct {
	session
	Sysctls []string `json:"sysctls,omitempty"` // the sysctls it needs on
}

// namespace returns the state of namespace key, adding it if missing.
func (st *state) namespace(key string) *nsState {
	if st.Namespaces == nil {
		st.Namespaces = map[string]*nsState{}
	}
	nss := st.Namespaces[key]
	if nss == nil {
		nss = &nsState{}
		st.Namespaces[key] = nss
	}
	if nss.Saved == nil {
		nss.Saved = map[string]string{}
	}
	return nss
}

// remove drops session id.
func (nss *nsState) remove(id session) {
	nss.Sessions = slices.DeleteFunc(nss.Sessions, func(s sessionState) bool { return s.session == id })
}

// settle puts back each saved sysctl that no session needs any more.
func settle(nss *nsState, logf func(string, ...any)) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(nss.Saved)) {
		if slices.ContainsFunc(nss.Sessions, func(s sessionState) bool { return slices.Contains(s.Sysctls, k) }) {
			continue
		}
		old := nss.Saved[k]
		cur, err := readSysctl(k)
		if err == nil && cur != old {
			err = writeSysctl(k, old)
			if err == nil {
				logf("nat: put %s back to %s", k, old)
			}
		}
		if err != nil {
			errs = append(errs, err) // kept, for the next session to try
			continue
		}
		delete(nss.Saved, k)
	}
	return errors.Join(errs...)
}

// sysctlsFor are the forwarding sysctls of IP versions fams.
func sysctlsFor(fams []int) []string {
	var out []string
	for _, f := range fams {
		if f == 4 {
			out = append(out, sysctlIPv4)
		} else {
			out = append(out, sysctlIPv6)
		}
	}
	return out
}

// sysctlPath is where sysctl name is, for the calling thread's network
// namespace.
func sysctlPath(name string) string {
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

func readSysctl(name string) (string, error) {
	b, err := os.ReadFile(sysctlPath(name))
	if err != nil {
		return "", fmt.Errorf("nat: reading %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(name, value string) error {
	if err := os.WriteFile(sysctlPath(name), []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("nat: setting %s to %s: %w", name, value, err)
	}
	return nil
}

// lockState takes the exclusive lock of the state directory dir, waiting for
// it.
func lockState(dir string) (unlock func(), err error) {
	if err := statedir.Check(dir, "use a directory owned by the account running sshvpn, writable by it alone"); err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	unlock, err = statedir.Lock(dir, lockFile)
	if err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	return unlock, nil
}

// loadState reads the state in dir; a missing file is an empty state.
func loadState(dir string) (*state, error) {
	st := &state{}
	name := filepath.Join(dir, stateFile)
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nat: state: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("nat: state: %s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize))
	if err != nil {
		return nil, fmt.Errorf("nat: state: %w", err)
	}
	if len(b) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("nat: state %s: %w", name, err)
	}
	return st, nil
}

// save writes st to dir atomically, or removes the file when st is empty.
func (st *state) save(dir string) error {
	name := filepath.Join(dir, stateFile)
	for k, nss := range st.Namespaces {
		if len(nss.Sessions) == 0 && len(nss.Saved) == 0 {
			delete(st.Namespaces, k)
		}
	}
	if len(st.Namespaces) == 0 {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("nat: state: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("nat: state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".nat-*.tmp")
	if err != nil {
		return fmt.Errorf("nat: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("nat: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("nat: writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("nat: state: %w", err)
	}
	return nil
}

// sysctlForwarding is Forwarding on Linux.
func sysctlForwarding() map[string]bool {
	out := map[string]bool{}
	for fam, name := range map[string]string{"ipv4": sysctlIPv4, "ipv6": sysctlIPv6} {
		if v, err := readSysctl(name); err == nil {
			out[fam] = v == "1"
		}
	}
	return out
}

// guardedForwarding is ForwardingFor on Linux.
func guardedForwarding(stateDir string) map[string]bool {
	out := sysctlForwarding()
	st, err := loadState(stateDir)
	if err != nil {
		return out
	}
	nss := st.Namespaces[proc.NetNS()]
	if nss == nil {
		return out
	}
	for fam := range guardedFamilies(nss) {
		out[map[int]string{4: "ipv4", 6: "ipv6"}[fam]] = false
	}
	return out
}

// guardedFamilies are the IP versions whose forwarding sshvpn turned on and has not
// put back yet: a sysctl saved as anything but "1". (settle forgets a
// saved value once no session needs it and it is back.) A family whose
// forwarding was on before sshvpn came has no guard: the admin's rules
// decide what is forwarded.
func guardedFamilies(nss *nsState) map[int]bool {
	out := map[int]bool{}
	for k, v := range nss.Saved {
		if v == "1" {
			continue
		}
		switch k {
		case sysctlIPv4:
			out[4] = true
		case sysctlIPv6:
			out[6] = true
		}
	}
	return out
}
