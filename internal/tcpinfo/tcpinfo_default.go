//go:build !linux

package tcpinfo

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// Get is Linux only: elsewhere it returns an error wrapping
// errors.ErrUnsupported.
func Get(local, remote netip.AddrPort) (Info, error) {
	return Info{}, fmt.Errorf("tcpinfo: reading a TCP connection's counters on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
