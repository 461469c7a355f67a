// Package routertest provides a fake router.Router for tests: it records
// every Config it is given and whether it was closed, and touches nothing.
package routertest

import (
	"sync"

	"github.com/sshvpn/sshvpn/router"
)

// Router is a fake router.Router.
type Router struct {
	// Err, if set, is what Set returns (after recording the Config).
	Err error

	mu      sync.Mutex
	configs []router.Config
	closed  int
}

// Set records cfg.
func (r *Router) Set(cfg router.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.configs = append(r.configs, cfg)
	return r.Err
}

// Close records the call.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed++
	return nil
}

// Configs returns the Configs given to Set, oldest first.
func (r *Router) Configs() []router.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]router.Config(nil), r.configs...)
}

// Closed reports how often Close was called.
func (r *Router) Closed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

var _ router.Router = (*Router)(nil)
