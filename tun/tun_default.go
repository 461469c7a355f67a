//go:build !linux

package tun

// Open returns ErrUnsupported: sshvpn drives devices on Linux only.
func Open(Config) (Device, error) { return nil, ErrUnsupported }

// Same reports false.
func Same(Device, string) bool { return false }

// Exists reports false.
func Exists(string) bool { return false }

// IsTun reports false.
func IsTun(string) bool { return false }

// OpenQueue is Linux only.
func OpenQueue(Device) (Device, error) { return nil, ErrUnsupported }

// OwnedBy is Linux only: false.
func OwnedBy(string, int) bool { return false }
