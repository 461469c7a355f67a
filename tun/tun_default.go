//go:build !linux

package tun

import "net/netip"

// Open returns ErrUnsupported: sshvpn drives devices on Linux only.
func Open(Config) (Device, error) { return nil, ErrUnsupported }

// Configure returns ErrUnsupported.
func Configure(string, Setup) error { return ErrUnsupported }

// AddRoute returns ErrUnsupported.
func AddRoute(string, netip.Prefix) error { return ErrUnsupported }

// DelRoute returns ErrUnsupported.
func DelRoute(string, netip.Prefix) error { return ErrUnsupported }
