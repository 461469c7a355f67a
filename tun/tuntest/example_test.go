package tuntest_test

import (
	"fmt"

	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// A Device stands in for the kernel: what the test puts on Inbound is what
// the code under test reads, and what it writes comes out on Outbound.
// Packets sit at an offset in their buffers, room for a header in front.
func Example() {
	dev := tuntest.New("fake0", 1500)
	dev.Inbound <- []byte{0x45, 0, 0, 20}

	const offset = 4
	bufs := [][]byte{make([]byte, offset+dev.MTU())}
	sizes := make([]int, dev.BatchSize())
	n, _ := dev.Read(bufs, sizes, offset)
	pkt := bufs[0][offset : offset+sizes[0]]
	dev.Write([][]byte{pkt}, 0)
	fmt.Printf("%s read %d packet of %d bytes and wrote % x\n", dev.Name(), n, sizes[0], <-dev.Outbound)

	dev.Close()
	_, err := dev.Read(bufs, sizes, offset)
	fmt.Println("after Close:", err)
	// Output:
	// fake0 read 1 packet of 4 bytes and wrote 45 00 00 14
	// after Close: file already closed
}
