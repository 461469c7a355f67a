package tunnel

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/sshvpn/sshvpn/internal/tcpinfo"
)

type fakeOuter struct{ err error }

func (f fakeOuter) OuterTCP() (netip.AddrPort, netip.AddrPort, error) {
	return netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:22"), f.err
}

// TestLossMeter: a connection is lossy while it retransmits at least
// lossyPermille of what it sends, and at least lossyRetrans segments, in
// the last lossWindow polls; clean otherwise; and a meter that cannot
// read says so.
func TestLossMeter(t *testing.T) {
	var info tcpinfo.Info
	m := newLossMeter(fakeOuter{})
	m.read = func(l, r netip.AddrPort) (tcpinfo.Info, error) {
		if l.Port() != 40000 || r.Port() != 22 {
			t.Errorf("read %v to %v", l, r)
		}
		return info, nil
	}
	step := func(segs, retrans uint32, want int32) {
		t.Helper()
		info.SegsOut += segs
		info.Retrans += retrans
		if got, err := m.poll(); err != nil || got != want {
			t.Errorf("after %d segments, %d retransmitted: %d, %v; want %d", segs, retrans, got, err, want)
		}
	}
	step(1000, 0, outerClean) // the first reading
	step(10000, 0, outerClean)
	step(10000, 2, outerClean)   // too few retransmissions
	step(10000, 1, outerClean)   // 3 of 30000: too small a share
	step(1000, 60, outerLossy)   // 63 of 31000
	step(10000, 100, outerLossy) // 1%, as on the lab's lossy profile
	step(10000, 0, outerLossy)   // the window still holds the losses
	for range lossWindow - 2 {
		info.SegsOut += 10000
		m.poll()
	}
	step(10000, 0, outerClean) // they have left it
}

// TestLossMeterUnknown: a transport that cannot name its connection, or
// a connection the kernel does not know, gives an error.
func TestLossMeterUnknown(t *testing.T) {
	if m := newLossMeter(struct{}{}); m != nil {
		t.Errorf("a meter for a transport with no TCP connection")
	}
	m := newLossMeter(fakeOuter{err: errors.New("no socket")})
	if st, err := m.poll(); err == nil || st != outerUnknown {
		t.Errorf("poll = %d, %v; want outerUnknown and an error", st, err)
	}
	m = newLossMeter(fakeOuter{})
	m.read = func(netip.AddrPort, netip.AddrPort) (tcpinfo.Info, error) { return tcpinfo.Info{}, tcpinfo.ErrNotFound }
	if st, err := m.poll(); !errors.Is(err, tcpinfo.ErrNotFound) || st != outerUnknown {
		t.Errorf("poll = %d, %v; want outerUnknown and ErrNotFound", st, err)
	}
}
