package tunnel

import (
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// TestLinkDropsWhileDetached: with no connection attached, what the link
// reads from its device is dropped and counted.
func TestLinkDropsWhileDetached(t *testing.T) {
	checkLeaks(t)
	dev := tuntest.New("tun0", 1500)
	link := NewLink(dev, LinkConfig{})
	defer link.Close()
	pkt := ipPacket(mustAddr("10.9.0.2"), mustAddr("10.9.0.1"), make([]byte, 100))
	for range 1000 {
		dev.Inbound <- pkt
	}
	if !eventuallyTrue(5*time.Second, func() bool { return link.Stats().DroppedDetached.Load() == 1000 }) {
		t.Fatalf("dropped %d of 1000 packets read while detached", link.Stats().DroppedDetached.Load())
	}
}
