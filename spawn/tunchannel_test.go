package spawn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// tunStream encodes packets as OpenSSH's tun@openssh.com stream does.
func tunStream(pkts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range pkts {
		af := uint32(afInet)
		if p[0]>>4 == 6 {
			af = afInet6
		}
		binary.Write(&b, binary.BigEndian, af)
		b.Write(p)
	}
	return b.Bytes()
}

func ip4(size int) []byte {
	p := make([]byte, size)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(size))
	for i := 20; i < size; i++ {
		p[i] = byte(i)
	}
	return p
}

func ip6(payload int) []byte {
	p := make([]byte, 40+payload)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(payload))
	return p
}

// TestReadTunPacket: packets come out whole and in order, however the
// stream is cut into reads; a lying header ends the stream with an error.
func TestReadTunPacket(t *testing.T) {
	want := [][]byte{ip4(84), ip6(1200), ip4(20), ip6(0), ip4(1500)}
	stream := tunStream(want...)
	// One byte per read: the worst the channel can do.
	br := bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(stream)), 16)
	hdr, pkt := make([]byte, 44), make([]byte, maxPacket)
	for i, w := range want {
		n, err := readTunPacket(br, hdr, pkt)
		if err != nil || !bytes.Equal(pkt[:n], w) {
			t.Fatalf("packet %d: %d bytes, %v; want %d bytes", i, n, err, len(w))
		}
	}
	if _, err := readTunPacket(br, hdr, pkt); !errors.Is(err, io.EOF) {
		t.Errorf("after the last packet: %v, want io.EOF", err)
	}
	for _, bad := range [][]byte{
		append([]byte{0, 0, 0, 24}, ip4(40)...),   // IPv4 under IPv6's family
		append([]byte{0, 0, 0, 2}, 0x45, 0, 0, 5), // a length under the header's
		{0, 0, 0, 2, 0x45, 0, 0},                  // cut short
	} {
		if _, err := readTunPacket(bufio.NewReader(bytes.NewReader(bad)), hdr, pkt); err == nil {
			t.Errorf("% x: no error", bad)
		}
	}
}

// FuzzReadTunPacket: whatever the server sends, the parser neither panics
// nor hands out a packet longer than allowed or different from its header.
func FuzzReadTunPacket(f *testing.F) {
	f.Add(tunStream(ip4(84), ip6(100)))
	f.Add([]byte{0, 0, 0, 2, 0x45, 0, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 10, 0x60, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		hdr, pkt := make([]byte, 44), make([]byte, maxPacket)
		for range 100 {
			n, err := readTunPacket(br, hdr, pkt)
			if err != nil {
				return
			}
			if n > maxPacket {
				t.Fatalf("a packet of %d bytes", n)
			}
			switch pkt[0] >> 4 {
			case 4:
				if int(binary.BigEndian.Uint16(pkt[2:])) != n {
					t.Fatalf("IPv4 length field %d, packet %d", binary.BigEndian.Uint16(pkt[2:]), n)
				}
			case 6:
				if 40+int(binary.BigEndian.Uint16(pkt[4:])) != n {
					t.Fatalf("IPv6 length field, packet %d", n)
				}
			default:
				t.Fatalf("a packet of IP version %d", pkt[0]>>4)
			}
		}
	})
}
