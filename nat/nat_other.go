//go:build !linux

package nat

import "errors"

// enableGateway returns an error: the gateway needs Linux.
func enableGateway(Config) (*Gateway, error) {
	return nil, errors.New("nat: --nat works on Linux servers only")
}

func (*Gateway) shutdown() error { return nil }

func cleanupState(string, func(string, ...any)) error { return nil }

// sysctlForwarding reports nothing: unknown here.
func sysctlForwarding() map[string]bool { return nil }

func guardedForwarding(string) map[string]bool { return nil }
