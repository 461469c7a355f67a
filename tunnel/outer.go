package tunnel

import (
	"net/netip"
	"time"

	"github.com/sshvpn/sshvpn/internal/tcpinfo"
)

// The outer TCP connection's losses. A transport that can name the TCP
// connection it rides on (spawn's Conns: ssh's socket, sshd's from
// SSH_CONNECTION, --native's own) lets the pump read that connection's
// counters from the kernel, twice a second: a connection that keeps
// retransmitting is on a lossy path, where the pacer steps aside (see
// pacer.lossy). This is the sign the pacer trusts first; the stalls it
// sees in the peer's Acks are its guess without one.

// outerTCP is a transport that names the TCP connection under it.
type outerTCP interface {
	OuterTCP() (local, remote netip.AddrPort, err error)
}

const (
	lossPoll      = 500 * time.Millisecond
	lossWindow    = 6 // polls: three seconds
	lossyRetrans  = 3 // a lossy path retransmits this many segments in the window,
	lossyPermille = 2 // and at least this share of those it sends
)

// The outer connection's state as the pacer reads it.
const (
	outerUnknown int32 = iota // no counters: the pacer goes by stalls
	outerClean
	outerLossy
)

// lossMeter reads one connection's retransmissions.
type lossMeter struct {
	conn          outerTCP
	local, remote netip.AddrPort
	found         bool
	last          tcpinfo.Info
	win           [lossWindow]struct{ retrans, segs uint32 }
	i             int
	read          func(local, remote netip.AddrPort) (tcpinfo.Info, error)
}

// newLossMeter is conn's meter, or nil when conn cannot name its TCP
// connection.
func newLossMeter(conn any) *lossMeter {
	o, ok := conn.(outerTCP)
	if !ok {
		return nil
	}
	return &lossMeter{conn: o, read: tcpinfo.Get}
}

// poll reads the counters and says what state the connection is in; an
// error means the meter cannot tell, now or later (the connection is not
// TCP, not in this namespace, or has gone).
func (m *lossMeter) poll() (int32, error) {
	if !m.found {
		var err error
		if m.local, m.remote, err = m.conn.OuterTCP(); err != nil {
			return outerUnknown, err
		}
		m.found = true
	}
	info, err := m.read(m.local, m.remote)
	if err != nil {
		return outerUnknown, err
	}
	last := m.last
	m.last = info
	if last == (tcpinfo.Info{}) {
		return outerClean, nil // the first reading: no deltas yet
	}
	m.win[m.i%lossWindow].retrans = info.Retrans - last.Retrans
	m.win[m.i%lossWindow].segs = info.SegsOut - last.SegsOut
	m.i++
	var retrans, segs uint64
	for _, w := range m.win {
		retrans += uint64(w.retrans)
		segs += uint64(w.segs)
	}
	if retrans >= lossyRetrans && retrans*1000 >= segs*lossyPermille {
		return outerLossy, nil
	}
	return outerClean, nil
}
