// Package tuntest provides an in-memory tun.Device for tests: packets put on
// Inbound are what the "kernel" hands to Read, and packets given to Write come
// out on Outbound.
package tuntest

import (
	"errors"
	"os"
	"sync"
)

// Device is an in-memory tun.Device.
type Device struct {
	Inbound  chan []byte // fed by the test; Read returns these
	Outbound chan []byte // written by the code under test

	name    string
	mtu     int
	closed  chan struct{}
	closing sync.Once
}

// New returns a Device with buffered channels of 64 packets each.
func New(name string, mtu int) *Device {
	return &Device{
		Inbound:  make(chan []byte, 64),
		Outbound: make(chan []byte, 64),
		name:     name,
		mtu:      mtu,
		closed:   make(chan struct{}),
	}
}

// Read returns the next packet from Inbound.
func (d *Device) Read(p []byte) (int, error) {
	select {
	case b := <-d.Inbound:
		return copy(p, b), nil
	case <-d.closed:
		return 0, os.ErrClosed
	}
}

// Write copies p to Outbound, blocking while Outbound is full.
func (d *Device) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	select {
	case d.Outbound <- b:
		return len(p), nil
	case <-d.closed:
		return 0, os.ErrClosed
	}
}

// Name returns the name given to New.
func (d *Device) Name() string { return d.name }

// MTU returns the MTU given to New.
func (d *Device) MTU() int { return d.mtu }

// Close unblocks pending and later Reads and Writes.
func (d *Device) Close() error {
	err := errors.New("tuntest: already closed")
	d.closing.Do(func() { close(d.closed); err = nil })
	return err
}

// Closed reports whether Close was called.
func (d *Device) Closed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}
