package framing

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Type is the kind of a frame.
type Type uint8

// Frame types; see the package documentation.
const (
	TypeHello Type = 1
	TypeData  Type = 2
	TypePing  Type = 3
	TypePong  Type = 4
	TypeError Type = 5
	TypeClose Type = 6
	// TypeOffload carries a virtio_net_hdr and the packet or GSO
	// super-packet behind it; only between peers whose Hellos agreed on
	// offloads (see the package documentation).
	TypeOffload Type = 7
	// TypeAck carries the count of Data and Offload payload bytes the
	// sender has received so far, for a peer that paces by it.
	TypeAck Type = 8
	// TypeCopy carries a second copy of a small Data or Offload frame,
	// sent over another connection of a striped session: the original's
	// type, one byte, then its payload; at most MaxCopyPayload bytes.
	TypeCopy Type = 9
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeData:
		return "data"
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	case TypeError:
		return "error"
	case TypeClose:
		return "close"
	case TypeOffload:
		return "offload"
	case TypeAck:
		return "ack"
	case TypeCopy:
		return "copy"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

const (
	// HeaderLen is the size of a frame header: type and 24-bit length.
	HeaderLen = 4
	// MaxPayload is the largest payload a frame may carry. It fits any IPv4
	// or IPv6 packet (without jumbograms) and an Ethernet frame of MTU up
	// to 65518.
	MaxPayload = 1 << 16
	// MaxPingPayload caps the payload of Ping and Pong frames.
	MaxPingPayload = 64
	// AckLen is the payload of an Ack frame: a 64-bit count.
	AckLen = 8
	// maxTextPayload caps Error and Close reasons and the Hello object.
	maxTextPayload = 8 << 10
	// VnetHdrLen is the size of the virtio_net_hdr that starts an Offload
	// frame's payload.
	VnetHdrLen = 10
	// MaxOffloadPayload is the largest payload of an Offload frame: the
	// header and a super-packet of up to 64 KiB. A Reader or Writer takes
	// Offload frames only once told to (AllowOffload).
	MaxOffloadPayload = VnetHdrLen + MaxPayload
	// MaxCopyPayload caps Copy frames: a type byte and a small packet,
	// behind its headers.
	MaxCopyPayload = 2048
)

// ErrTooLarge is returned by Writer.WriteFrame for a payload over the limit
// for its type.
var ErrTooLarge = errors.New("framing: payload too large")

// limit reports the largest payload a frame of type t may carry; offload
// is the limit for Offload frames, where 0 means that none may come (-1).
func limit(t Type, offload int) int {
	switch t {
	case TypePing, TypePong:
		return MaxPingPayload
	case TypeAck:
		return AckLen
	case TypeCopy:
		return MaxCopyPayload
	case TypeHello, TypeError, TypeClose:
		return maxTextPayload
	case TypeOffload:
		if offload == 0 {
			return -1
		}
		return offload
	}
	return MaxPayload
}

// Reader reads frames from a byte stream through a buffer.
type Reader struct {
	br      *bufio.Reader
	pending int // bytes of the last frame still to discard
	offload int // the largest Offload frame allowed; 0 refuses them
}

// NewReader returns a Reader reading from r. Its buffer holds one frame of
// the largest size, so ReadFrame never allocates.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, HeaderLen+MaxOffloadPayload)}
}

// Buffered is how many bytes of the stream the Reader holds unread: 0
// once it has handed out all that the last read brought.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.pending }

// AllowOffload lets Offload frames of up to max payload bytes (at most
// MaxOffloadPayload) come, once the handshake agreed on offloads; 0
// refuses them again.
func (r *Reader) AllowOffload(max int) { r.offload = min(max, MaxOffloadPayload) }

// ReadFrame reads the next frame. The payload aliases the Reader's buffer and
// is valid only until the next call. At a clean end of stream between frames
// it returns io.EOF; a stream that ends inside a frame gives
// io.ErrUnexpectedEOF. A malformed header (type 0, or a length over the
// limit for its type) is an error that names what was wrong.
func (r *Reader) ReadFrame() (Type, []byte, error) {
	if r.pending > 0 {
		r.br.Discard(r.pending)
		r.pending = 0
	}
	hdr, err := r.br.Peek(HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	t := Type(hdr[0])
	n := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	if t == 0 {
		return 0, nil, fmt.Errorf("framing: malformed frame header % x (type 0); the stream is corrupt", hdr)
	}
	if t == TypeOffload && r.offload == 0 {
		return 0, nil, fmt.Errorf("framing: an offload frame from a peer that did not agree to offloads; the peer is broken")
	}
	if max := limit(t, r.offload); n > max {
		return 0, nil, fmt.Errorf("framing: %v frame of %d bytes exceeds the limit of %d; the stream is corrupt or the peer is broken", t, n, max)
	}
	buf, err := r.br.Peek(HeaderLen + n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("framing: reading %v frame of %d bytes: %w", t, n, err)
	}
	r.pending = HeaderLen + n
	// Cap the payload at its length, so that a caller appending to it
	// cannot overwrite the frames buffered behind it.
	return t, buf[HeaderLen : HeaderLen+n : HeaderLen+n], nil
}

// Writer buffers frames for one underlying writer. It is not safe for
// concurrent use: one goroutine owns it, as one goroutine owns each direction
// of a stream.
type Writer struct {
	w       io.Writer
	buf     []byte
	started bool // something was written: the preamble may no longer come
	offload int  // the largest Offload frame allowed; 0 refuses them
}

// DefaultWriterSize is the buffer size of NewWriter: several full-size
// packets, so a burst leaves in one write.
const DefaultWriterSize = 256 << 10

// NewWriter returns a Writer to w with a buffer of DefaultWriterSize.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, DefaultWriterSize) }

// NewWriterSize returns a Writer to w with a buffer of size bytes. A frame
// larger than the buffer still goes out whole.
func NewWriterSize(w io.Writer, size int) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, max(size, HeaderLen))}
}

// AllowOffload lets Offload frames of up to max payload bytes (at most
// MaxOffloadPayload) be written: the smaller of what this side and the
// peer said they take. 0 refuses them again.
func (w *Writer) AllowOffload(max int) { w.offload = min(max, MaxOffloadPayload) }

// Next returns room for the payload of one frame of up to max bytes at
// the end of the buffer, flushing first if it would not fit, for the
// caller to fill (a device read straight into it) and then Commit. Nothing
// else may be written between Next and Commit.
func (w *Writer) Next(max int) ([]byte, error) {
	max = min(max, MaxOffloadPayload)
	if len(w.buf)+HeaderLen+max > cap(w.buf) {
		if err := w.Flush(); err != nil {
			return nil, err
		}
		if HeaderLen+max > cap(w.buf) {
			w.buf = make([]byte, 0, HeaderLen+max)
		}
	}
	return w.buf[len(w.buf)+HeaderLen : len(w.buf)+HeaderLen+max], nil
}

// Commit appends the frame of type t whose n-byte payload the caller put
// at the start of the room Next returned.
func (w *Writer) Commit(t Type, n int) error {
	if err := w.check(t, n); err != nil {
		return err
	}
	if len(w.buf)+HeaderLen+n > cap(w.buf) {
		return fmt.Errorf("framing: commit of %d bytes beyond the room Next gave", n)
	}
	w.started = true
	w.buf = append(w.buf, byte(t), byte(n>>16), byte(n>>8), byte(n))
	w.buf = w.buf[:len(w.buf)+n]
	return nil
}

func (w *Writer) check(t Type, n int) error {
	if t == 0 {
		return errors.New("framing: frame type 0 is invalid")
	}
	if t == TypeOffload && w.offload == 0 {
		return fmt.Errorf("%w: offload frames were not agreed with the peer", ErrTooLarge)
	}
	if max := limit(t, w.offload); n > max {
		return fmt.Errorf("%w: %v frame of %d bytes, limit %d", ErrTooLarge, t, n, max)
	}
	return nil
}

// WriteFrame appends one frame to the buffer, flushing first if it would not
// fit. The payload is copied; the caller may reuse it at once.
func (w *Writer) WriteFrame(t Type, payload []byte) error {
	if err := w.check(t, len(payload)); err != nil {
		return err
	}
	if len(w.buf)+HeaderLen+len(payload) > cap(w.buf) {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	n := len(payload)
	w.started = true
	w.buf = append(w.buf, byte(t), byte(n>>16), byte(n>>8), byte(n))
	w.buf = append(w.buf, payload...)
	return nil
}

// WriteFramed flushes what is buffered, then writes one frame of type t
// whose payload is frame[HeaderLen:]: the header goes into the room in
// front of it, and the frame leaves in the same write, without a copy
// (for large payloads, which a copy into the buffer would cost more than
// a second write saves).
func (w *Writer) WriteFramed(t Type, frame []byte) error {
	n := len(frame) - HeaderLen
	if n < 0 {
		return errors.New("framing: WriteFramed without room for the header")
	}
	if err := w.check(t, n); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	w.started = true
	frame[0], frame[1], frame[2], frame[3] = byte(t), byte(n>>16), byte(n>>8), byte(n)
	_, err := w.w.Write(frame)
	return err
}

// Available reports how many bytes the buffer can take before WriteFrame
// would flush.
func (w *Writer) Available() int { return cap(w.buf) - len(w.buf) }

// Buffered reports how many bytes wait for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes everything buffered in one call to the underlying writer.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
