package framing_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sshvpn/sshvpn/framing"
)

func Example() {
	var stream bytes.Buffer

	// The sending side: preamble, handshake, one packet, one write.
	w := framing.NewWriter(&stream)
	w.WritePreamble()
	w.WriteHello(&framing.Hello{
		Role:  "client",
		Mode:  "tun",
		MTU:   1400,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/30")},
	})
	w.WriteFrame(framing.TypeData, []byte{0x45, 0x00, 0x00, 0x14})
	if err := w.Flush(); err != nil {
		fmt.Println(err)
		return
	}

	// The receiving side.
	r := framing.NewReader(&stream)
	v, err := r.ReadPreamble()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("protocol", v)
	for {
		t, payload, err := r.ReadFrame()
		if err != nil {
			fmt.Println("end:", err)
			break
		}
		switch t {
		case framing.TypeHello:
			h, err := framing.ParseHello(payload)
			if err != nil {
				fmt.Println(err)
				return
			}
			fmt.Println("hello from", h.Role, h.Mode, h.MTU, h.Addrs)
		case framing.TypeData:
			fmt.Printf("data % x\n", payload)
		}
	}
	// Output:
	// protocol 1
	// hello from client tun 1400 [10.99.0.2/30]
	// data 45 00 00 14
	// end: EOF
}

func ExampleReader_ReadPreamble() {
	r := framing.NewReader(bytes.NewBufferString("Last login: Mon Jan  1 00:00:00\nSSHVPN/1\n"))
	_, err := r.ReadPreamble()
	var pe *framing.PreambleError
	if errors.As(err, &pe) {
		fmt.Printf("got %q\n", pe.Got)
	}
	// Output:
	// got "Last login: Mon Jan  1 00:00:00\nSSHVPN/1\n"
}
