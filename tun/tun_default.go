//go:build !linux

package tun

import (
	"net"
	"net/netip"
)

// Open returns ErrUnsupported: sshvpn drives devices on Linux only.
func Open(Config) (Device, error) { return nil, ErrUnsupported }

// Configure returns ErrUnsupported.
func Configure(string, Setup) ([]netip.Prefix, error) { return nil, ErrUnsupported }

// DelAddrs returns ErrUnsupported.
func DelAddrs(string, []netip.Prefix) error { return ErrUnsupported }

// AddRoute returns ErrUnsupported.
func AddRoute(Route) error { return ErrUnsupported }

// DelRoute returns ErrUnsupported.
func DelRoute(Route) error { return ErrUnsupported }

// RouteTo returns ErrUnsupported.
func RouteTo(netip.Addr) (Route, error) { return Route{}, ErrUnsupported }

// SetMAC returns ErrUnsupported.
func SetMAC(string, net.HardwareAddr) error { return ErrUnsupported }

// SetBridge returns ErrUnsupported.
func SetBridge(string, string) error { return ErrUnsupported }

// Persistent reports false.
func Persistent(Device) bool { return false }

// Same reports false.
func Same(Device, string) bool { return false }

// Exists reports false.
func Exists(string) bool { return false }

// Nets returns ErrUnsupported.
func Nets() ([]Net, error) { return nil, ErrUnsupported }

// Routes returns ErrUnsupported.
func Routes(int) ([]Route, error) { return nil, ErrUnsupported }

// IsTun reports false.
func IsTun(string) bool { return false }
