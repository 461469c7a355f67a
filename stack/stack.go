// Package stack is what a tunnel sets up on its host, as one ordered stack
// of stages: the device's addresses and routes (with the SSH server's
// route pinned outside the tunnel), NAT, DNS, the hooks and the session's
// record. Stages come up in order and go down in reverse, on every exit
// path: a stage that fails to come up takes down those that came up before
// it in the same call, and Down takes down every stage that is up.
//
// A reconnect brings the stack up again, to the tunnel of the new
// connection: each stage then changes only what differs (the router),
// or nothing (NAT, DNS), or runs again when asked to (hooks with Rehook).
package stack

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/sshvpn/sshvpn/policy"
)

// Conf is what the stack is brought up to. Stages see it in order and may
// add what later stages need (Routes, for the hooks' environment).
type Conf struct {
	Tunnel policy.Tunnel
	// Server is the SSH server's address as the connection reached it
	// (the client's side), if known: its route is pinned outside the
	// tunnel when the tunnel would cover it.
	Server netip.Addr
	// Dev is the device's name.
	Dev string
	// Routes are the networks routed into the tunnel on this side, as
	// the routes stage set them.
	Routes []netip.Prefix
}

// A Stage is one part of the host's configuration.
type Stage interface {
	// Up brings the stage to c. It is called again for every reconnect;
	// a failed Up leaves nothing of itself behind (it undoes what it did
	// in that call).
	Up(c *Conf) error
	// Down undoes everything Up did. It is called once, for a stage that
	// is up.
	Down() error
}

// Detacher is a stage that is told when the connection is gone and another
// may follow (the hooks, with Rehook).
type Detacher interface{ Detached() }

// Stack runs its stages in order.
type Stack struct {
	dev    string
	log    *slog.Logger
	stages []Stage

	mu sync.Mutex
	up []bool // which stages are up
}

// New is the stack of stages, in the order they come up, for device dev;
// nil stages are left out.
func New(dev string, log *slog.Logger, stages ...Stage) *Stack {
	s := &Stack{dev: dev, log: log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, st := range stages {
		if st != nil {
			s.stages = append(s.stages, st)
		}
	}
	s.up = make([]bool, len(s.stages))
	return s
}

// Up brings every stage, in order, to tunnel t of a connection to server.
// When a stage fails, the stages this call brought up go down again, in
// reverse order, and its error is returned; stages that were up before
// (an earlier connection's) stay up for Down.
func (s *Stack) Up(t policy.Tunnel, server netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &Conf{Tunnel: t, Server: server, Dev: s.dev}
	var fresh []int
	for i, st := range s.stages {
		if err := st.Up(c); err != nil {
			for j := len(fresh) - 1; j >= 0; j-- {
				s.down(fresh[j])
			}
			return err
		}
		if !s.up[i] {
			s.up[i] = true
			fresh = append(fresh, i)
		}
	}
	return nil
}

// Detached tells the stages that the connection is gone and another may
// follow.
func (s *Stack) Detached() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.stages {
		if d, ok := st.(Detacher); ok && s.up[i] {
			d.Detached()
		}
	}
}

// Down takes every stage that is up down, in reverse order. Each failure
// is logged; all of them are returned.
func (s *Stack) Down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i := len(s.stages) - 1; i >= 0; i-- {
		if s.up[i] {
			errs = append(errs, s.down(i))
		}
	}
	return errors.Join(errs...)
}

// down takes stage i down.
func (s *Stack) down(i int) error {
	s.up[i] = false
	err := s.stages[i].Down()
	if err != nil {
		s.log.Error(err.Error())
	}
	return err
}

// Func is a stage made of two functions, either of which may be nil.
type Func struct {
	OnUp   func(c *Conf) error
	OnDown func() error
}

func (f Func) Up(c *Conf) error {
	if f.OnUp == nil {
		return nil
	}
	return f.OnUp(c)
}

func (f Func) Down() error {
	if f.OnDown == nil {
		return nil
	}
	return f.OnDown()
}
