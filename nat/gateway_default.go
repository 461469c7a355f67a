//go:build !linux

package nat

import (
	"errors"
	"runtime"
)

// errUnsupported is Enable's answer off Linux.
var errUnsupported = errors.New("nat: --nat works on Linux servers only, not on " + runtime.GOOS)

// Enable returns an error: the gateway needs Linux (nftables and its
// forwarding sysctls).
func Enable(Config) (*Gateway, error) { return nil, errUnsupported }

// Close does nothing: no gateway is made here.
func (*Gateway) Close() error { return nil }

// Cleanup does nothing: no gateway leaves anything here.
func Cleanup(string, func(string, ...any)) error { return nil }

// Forwarding reports nothing: unknown here.
func Forwarding() map[string]bool { return nil }

// ForwardingFor reports nothing: unknown here.
func ForwardingFor(string) map[string]bool { return nil }
