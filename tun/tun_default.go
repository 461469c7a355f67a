//go:build !linux

package tun

// Open returns ErrUnsupported: sshvpn drives devices on Linux only.
func Open(Config) (Device, error) { return nil, ErrUnsupported }

// Configure returns ErrUnsupported.
func Configure(string, Setup) error { return ErrUnsupported }
