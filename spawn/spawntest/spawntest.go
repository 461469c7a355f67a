// Package spawntest is a transport fake for tests: a spawn.Dialer whose
// connections are in-memory streams, the far end of each handed to a
// function that plays the server.
package spawntest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sshvpn/sshvpn/spawn"
)

// Dialer dials in memory.
type Dialer struct {
	// Serve plays the server on the far end of each connection, in a
	// goroutine of its own; it should close conn when done.
	Serve func(conn net.Conn)
	// Fail, if set, is asked before each dial (n counts from 1): an error
	// makes that connection fail when read, as a spawned ssh that could
	// not connect does.
	Fail func(n int) error

	dials atomic.Int32
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// Dial returns the near end of a new in-memory connection.
func (d *Dialer) Dial(ctx context.Context) (spawn.Conn, error) {
	n := int(d.dials.Add(1))
	if d.Fail != nil {
		if err := d.Fail(n); err != nil {
			return failed{err}, nil
		}
	}
	near, far := net.Pipe()
	d.mu.Lock()
	d.conns = append(d.conns, far)
	d.mu.Unlock()
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.Serve(far) }()
	return Conn{near}, nil
}

// Dials is how many connections were dialed.
func (d *Dialer) Dials() int { return int(d.dials.Load()) }

// Drop closes the far end of every connection so far, as a connection
// that dies under the client.
func (d *Dialer) Drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// Wait waits for every Serve to return.
func (d *Dialer) Wait() { d.wg.Wait() }

// Conn is a spawn.Conn over an in-memory stream; its peer's address is
// unknown.
type Conn struct{ net.Conn }

func (Conn) PeerAddr(context.Context) (netip.Addr, error) {
	return netip.Addr{}, errors.New("spawntest: in memory")
}

func (Conn) Err() error { return nil }

// failed is a connection that fails with err when read.
type failed struct{ err error }

func (c failed) Read([]byte) (int, error)                     { return 0, c.err }
func (c failed) Write(p []byte) (int, error)                  { return len(p), nil }
func (c failed) Close() error                                 { return nil }
func (c failed) PeerAddr(context.Context) (netip.Addr, error) { return netip.Addr{}, c.err }
func (c failed) Err() error                                   { return c.err }
