package tunnel

import "github.com/sshvpn/sshvpn/framing"

// smallBuf is the size of the buffers small packets are queued in; a
// larger packet keeps the buffer the device reader read it into.
const smallBuf = 2048

// bufs are free packet buffers, small and large.
type bufs struct {
	small, large chan []byte
}

func newBufs() bufs { return bufs{small: make(chan []byte, 4096), large: make(chan []byte, 64)} }

func (b bufs) getLarge() []byte {
	select {
	case buf := <-b.large:
		return buf
	default:
		return make([]byte, framing.HeaderLen+readSize)
	}
}

func (b bufs) getSmall() []byte {
	select {
	case buf := <-b.small:
		return buf
	default:
		return make([]byte, smallBuf)
	}
}

// put takes a buffer back; what does not fit the free lists is left to
// the garbage collector.
func (b bufs) put(buf []byte) {
	switch cap(buf) {
	case framing.HeaderLen + readSize:
		select {
		case b.large <- buf[:framing.HeaderLen+readSize]:
		default:
		}
	case smallBuf:
		select {
		case b.small <- buf[:smallBuf]:
		default:
		}
	}
}

// wake signals c without waiting.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
