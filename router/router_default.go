//go:build !linux

package router

import (
	"log/slog"
	"net/netip"

	"github.com/sshvpn/sshvpn/tun"
)

// New returns a Router whose Set returns ErrUnsupported.
func New(tun.Device, Options) Router { return unsupported{} }

type unsupported struct{}

func (unsupported) Set(Config) error { return ErrUnsupported }
func (unsupported) Close() error     { return nil }

// Options configure New.
type Options struct {
	Logger *slog.Logger
	Record func([]Route)
	Shared func(Route) bool
}

// Nets returns ErrUnsupported.
func Nets() ([]Net, error) { return nil, ErrUnsupported }

// ListRoutes returns ErrUnsupported.
func ListRoutes(int) ([]Route, error) { return nil, ErrUnsupported }

// DelRoute returns ErrUnsupported.
func DelRoute(Route) error { return ErrUnsupported }

// RouteTo returns ErrUnsupported.
func RouteTo(netip.Addr) (Route, error) { return Route{}, ErrUnsupported }
