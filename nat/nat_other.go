//go:build !linux

package nat

import "errors"

// Gateway is one session's share of the gateway.
type Gateway struct{}

// Enable returns an error: the gateway needs Linux.
func Enable(Config) (*Gateway, error) {
	return nil, errors.New("nat: --nat works on Linux servers only")
}

// Close does nothing.
func (*Gateway) Close() error { return nil }

// Cleanup does nothing.
func Cleanup(string, func(string, ...any)) error { return nil }

// Forwarding reports nothing: unknown here.
func Forwarding() map[string]bool { return nil }

// ForwardingFor reports nothing: unknown here.
func ForwardingFor(string) map[string]bool { return nil }
