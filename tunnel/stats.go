package tunnel

import (
	"fmt"
	"sync/atomic"
	"time"
)

// DeadPeerError says the peer stopped answering keepalives.
type DeadPeerError struct{ Silent time.Duration }

func (e *DeadPeerError) Error() string {
	return fmt.Sprintf("tunnel: no sign of life from the peer for %v; assuming the connection is dead", e.Silent.Round(time.Second))
}

// Stats counts a pump's traffic.
type Stats struct {
	PacketsOut, BytesOut atomic.Uint64 // device -> transport
	PacketsIn, BytesIn   atomic.Uint64 // transport -> device
	Dropped              atomic.Uint64 // packets from the peer refused by the filter or the device
	DroppedOut           atomic.Uint64 // packets to the peer refused by the filter, or needing offloads the peer did not agree to
	DroppedRate          atomic.Uint64 // packets either way over the session's rate limit
	DroppedDetached      atomic.Uint64 // packets read from the device while no connection was attached
	Malformed            atomic.Uint64 // offload frames from the peer whose virtio-net header failed the check
	QueueDropped         atomic.Uint64 // packets to the peer dropped by the queue's CoDel: they waited too long
	QueueMarked          atomic.Uint64 // packets to the peer CE-marked by CoDel instead (ECN)
	QueueOverflow        atomic.Uint64 // packets to the peer dropped because the queue was full
	RTT                  atomic.Int64  // the last keepalive's round trip, in nanoseconds; 0 before the first
	HandedOver           atomic.Uint64 // packets another link of the stripe read for this one (see Stripe)
	Twice                atomic.Uint64 // second copies from the peer of packets it sent over two streams, dropped
}
