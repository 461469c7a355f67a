package tuntest_test

import (
	"fmt"

	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// A Device stands in for the kernel: what the test puts on Inbound is what
// the code under test reads, and what it writes comes out on Outbound.
func Example() {
	dev := tuntest.New("fake0", 1500)
	dev.Inbound <- []byte{0x45, 0, 0, 20}

	buf := make([]byte, dev.MTU())
	n, _ := dev.Read(buf)
	dev.Write(buf[:n])
	fmt.Printf("%s read %d bytes and wrote % x\n", dev.Name(), n, <-dev.Outbound)

	dev.Close()
	_, err := dev.Read(buf)
	fmt.Println("after Close:", err)
	// Output:
	// fake0 read 4 bytes and wrote 45 00 00 14
	// after Close: file already closed
}
