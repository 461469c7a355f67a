// Package tuntest provides an in-memory tun.Device for tests: packets put on
// Inbound are what the "kernel" hands to Read, and packets given to Write come
// out on Outbound.
package tuntest

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sshvpn/sshvpn/tun"
)

// Device is an in-memory tun.Device.
type Device struct {
	Inbound  chan []byte // fed by the test; Read returns these
	Outbound chan []byte // written by the code under test

	// Batch is how many packets one Read may return (BatchSize); 1 unless
	// a test sets it before first use.
	Batch int
	// Offload is what the "kernel" accepts (Offloads), set by a test
	// before first use: when not 0, packets on Inbound and Outbound begin
	// with a virtio_net_hdr, as on a device opened with tun.Config.Offload.
	Offload tun.Offload

	enabled atomic.Uint32 // what SetOffload enabled

	name    string
	mtu     int
	index   int
	closed  chan struct{}
	closing sync.Once
}

var nextIndex atomic.Int32

// New returns a Device with buffered channels of 64 packets each.
func New(name string, mtu int) *Device {
	return &Device{
		Inbound:  make(chan []byte, 64),
		Outbound: make(chan []byte, 64),
		Batch:    1,
		name:     name,
		mtu:      mtu,
		index:    1000 + int(nextIndex.Add(1)),
		closed:   make(chan struct{}),
	}
}

// Read waits for a packet from Inbound, then takes as many more as are
// queued, up to len(bufs) and BatchSize. A packet longer than its buffer is
// cut, and its full length reported, as the Linux kernel does.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var b []byte
	select {
	case b = <-d.Inbound:
	case <-d.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		copy(bufs[n][offset:], b)
		sizes[n] = len(b)
		n++
		if n == len(bufs) || n == d.BatchSize() {
			return n, nil
		}
		select {
		case b = <-d.Inbound:
		default:
			return n, nil
		}
	}
}

// TryRead takes a packet from Inbound if one is there.
func (d *Device) TryRead(buf []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	select {
	case b := <-d.Inbound:
		copy(buf, b)
		return len(b), nil
	default:
		return 0, nil
	}
}

// Offloads returns Offload.
func (d *Device) Offloads() tun.Offload { return d.Offload }

// SetOffload records o, which Enabled returns.
func (d *Device) SetOffload(o tun.Offload) error {
	if o&^d.Offload != 0 {
		return fmt.Errorf("tuntest: offloads %v are not among %v", o, d.Offload)
	}
	d.enabled.Store(uint32(o))
	return nil
}

// Enabled returns what SetOffload enabled last.
func (d *Device) Enabled() tun.Offload { return tun.Offload(d.enabled.Load()) }

// Write copies each packet to Outbound, blocking while Outbound is full.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	for i, p := range bufs {
		b := append([]byte(nil), p[offset:]...)
		select {
		case d.Outbound <- b:
		case <-d.closed:
			return i, os.ErrClosed
		}
	}
	return len(bufs), nil
}

// BatchSize returns Batch (at least 1).
func (d *Device) BatchSize() int { return max(d.Batch, 1) }

// Name returns the name given to New.
func (d *Device) Name() string { return d.name }

// MTU returns the MTU given to New.
func (d *Device) MTU() int { return d.mtu }

// Index returns a made-up interface index, distinct for each Device.
func (d *Device) Index() int { return d.index }

// Persistent reports false.
func (d *Device) Persistent() bool { return false }

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

var _ tun.Device = (*Device)(nil)
