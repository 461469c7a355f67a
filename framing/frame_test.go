package framing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// frame hand-encodes one frame header with an arbitrary (possibly invalid)
// length followed by payload.
func frame(t byte, length int, payload []byte) []byte {
	b := []byte{t, byte(length >> 16), byte(length >> 8), byte(length)}
	return append(b, payload...)
}

// enc hand-encodes a well-formed frame.
func enc(t Type, payload []byte) []byte { return frame(byte(t), len(payload), payload) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{TypeHello, "hello"},
		{TypeData, "data"},
		{TypePing, "ping"},
		{TypePong, "pong"},
		{TypeError, "error"},
		{TypeClose, "close"},
		{0, "type(0)"},
		{200, "type(200)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
}

func TestLimit(t *testing.T) {
	tests := []struct {
		t    Type
		want int
	}{
		{TypeHello, maxTextPayload},
		{TypeData, MaxPayload},
		{TypePing, MaxPingPayload},
		{TypePong, MaxPingPayload},
		{TypeError, maxTextPayload},
		{TypeClose, maxTextPayload},
		{TypeAck, AckLen},
		{TypeCopy, MaxCopyPayload},
		{10, MaxPayload},
		{TypeOffload, -1},
		{200, MaxPayload},
	}
	for _, tt := range tests {
		if got := limit(tt.t, 0); got != tt.want {
			t.Errorf("limit(%v, 0) = %d, want %d", tt.t, got, tt.want)
		}
	}
	if maxTextPayload != 8192 {
		t.Errorf("maxTextPayload = %d, want 8 KiB", maxTextPayload)
	}
}

type readResult struct {
	t       Type
	payload []byte
}

func TestReadFrame(t *testing.T) {
	ascii := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	tests := []struct {
		name   string
		stream []byte
		want   []readResult // frames expected before the final result
		err    error        // final error, matched with errors.Is; nil: see errSub
		errSub string       // substring of the final error when err is not a sentinel
		bareIs bool         // the final error must be exactly err, not wrapped
	}{
		{name: "hello", stream: enc(TypeHello, []byte(`{"role":"client"}`)),
			want: []readResult{{TypeHello, []byte(`{"role":"client"}`)}}, err: io.EOF, bareIs: true},
		{name: "data", stream: enc(TypeData, []byte{0x45, 0, 0, 20}),
			want: []readResult{{TypeData, []byte{0x45, 0, 0, 20}}}, err: io.EOF, bareIs: true},
		{name: "ping", stream: enc(TypePing, []byte("12345678")),
			want: []readResult{{TypePing, []byte("12345678")}}, err: io.EOF, bareIs: true},
		{name: "pong", stream: enc(TypePong, []byte("12345678")),
			want: []readResult{{TypePong, []byte("12345678")}}, err: io.EOF, bareIs: true},
		{name: "error", stream: enc(TypeError, []byte("no addresses left")),
			want: []readResult{{TypeError, []byte("no addresses left")}}, err: io.EOF, bareIs: true},
		{name: "close", stream: enc(TypeClose, []byte("bye")),
			want: []readResult{{TypeClose, []byte("bye")}}, err: io.EOF, bareIs: true},
		{name: "unknown type 200 is returned",
			stream: cat(enc(200, []byte("future")), enc(TypeData, []byte("p"))),
			want:   []readResult{{200, []byte("future")}, {TypeData, []byte("p")}}, err: io.EOF, bareIs: true},
		{name: "unknown type 8 is returned", stream: enc(8, nil),
			want: []readResult{{8, nil}}, err: io.EOF, bareIs: true},
		{name: "offload frame without agreement", stream: enc(TypeOffload, []byte("0123456789E")),
			errSub: "did not agree to offloads"},
		{name: "all types in sequence",
			stream: cat(enc(TypeHello, []byte("{}")), enc(TypeData, []byte("d")), enc(TypePing, []byte("p")),
				enc(TypePong, []byte("p")), enc(TypeError, []byte("e")), enc(TypeClose, nil)),
			want: []readResult{{TypeHello, []byte("{}")}, {TypeData, []byte("d")}, {TypePing, []byte("p")},
				{TypePong, []byte("p")}, {TypeError, []byte("e")}, {TypeClose, nil}},
			err: io.EOF, bareIs: true},

		// Empty payloads.
		{name: "empty hello", stream: enc(TypeHello, nil), want: []readResult{{TypeHello, nil}}, err: io.EOF, bareIs: true},
		{name: "empty data", stream: enc(TypeData, nil), want: []readResult{{TypeData, nil}}, err: io.EOF, bareIs: true},
		{name: "empty ping", stream: enc(TypePing, nil), want: []readResult{{TypePing, nil}}, err: io.EOF, bareIs: true},
		{name: "empty pong", stream: enc(TypePong, nil), want: []readResult{{TypePong, nil}}, err: io.EOF, bareIs: true},
		{name: "empty error", stream: enc(TypeError, nil), want: []readResult{{TypeError, nil}}, err: io.EOF, bareIs: true},
		{name: "empty close", stream: enc(TypeClose, nil), want: []readResult{{TypeClose, nil}}, err: io.EOF, bareIs: true},

		// Exactly at each type's limit.
		{name: "data at limit", stream: enc(TypeData, ascii(MaxPayload)),
			want: []readResult{{TypeData, ascii(MaxPayload)}}, err: io.EOF, bareIs: true},
		{name: "unknown at limit", stream: enc(10, ascii(MaxPayload)),
			want: []readResult{{10, ascii(MaxPayload)}}, err: io.EOF, bareIs: true},
		{name: "copy at limit", stream: enc(TypeCopy, ascii(MaxCopyPayload)),
			want: []readResult{{TypeCopy, ascii(MaxCopyPayload)}}, err: io.EOF, bareIs: true},
		{name: "ping at limit", stream: enc(TypePing, ascii(MaxPingPayload)),
			want: []readResult{{TypePing, ascii(MaxPingPayload)}}, err: io.EOF, bareIs: true},
		{name: "pong at limit", stream: enc(TypePong, ascii(MaxPingPayload)),
			want: []readResult{{TypePong, ascii(MaxPingPayload)}}, err: io.EOF, bareIs: true},
		{name: "hello at limit", stream: enc(TypeHello, ascii(8192)),
			want: []readResult{{TypeHello, ascii(8192)}}, err: io.EOF, bareIs: true},
		{name: "error at limit", stream: enc(TypeError, ascii(8192)),
			want: []readResult{{TypeError, ascii(8192)}}, err: io.EOF, bareIs: true},
		{name: "close at limit", stream: enc(TypeClose, ascii(8192)),
			want: []readResult{{TypeClose, ascii(8192)}}, err: io.EOF, bareIs: true},
		{name: "two data frames at limit back to back",
			stream: cat(enc(TypeData, ascii(MaxPayload)), enc(TypeData, bytes.Repeat([]byte("y"), MaxPayload))),
			want:   []readResult{{TypeData, ascii(MaxPayload)}, {TypeData, bytes.Repeat([]byte("y"), MaxPayload)}},
			err:    io.EOF, bareIs: true},

		// One byte over each limit: rejected from the header alone, so
		// the payload need not even be present.
		{name: "data over limit", stream: enc(TypeData, ascii(MaxPayload+1)), errSub: "limit of 65536"},
		{name: "data over limit header only", stream: frame(2, MaxPayload+1, nil), errSub: "limit of 65536"},
		{name: "unknown over limit", stream: frame(200, MaxPayload+1, nil), errSub: "limit of 65536"},
		{name: "ping over limit", stream: enc(TypePing, ascii(MaxPingPayload+1)), errSub: "limit of 64"},
		{name: "pong over limit", stream: enc(TypePong, ascii(MaxPingPayload+1)), errSub: "limit of 64"},
		{name: "hello over limit", stream: enc(TypeHello, ascii(8193)), errSub: "limit of 8192"},
		{name: "error over limit", stream: enc(TypeError, ascii(8193)), errSub: "limit of 8192"},
		{name: "close over limit", stream: enc(TypeClose, ascii(8193)), errSub: "limit of 8192"},
		{name: "max 24-bit length", stream: []byte{2, 0xff, 0xff, 0xff}, errSub: "16777215 bytes exceeds the limit of 65536"},
		{name: "over limit after a good frame", stream: cat(enc(TypeData, []byte("ok")), frame(3, 65, nil)),
			want: []readResult{{TypeData, []byte("ok")}}, errSub: "ping frame of 65 bytes exceeds the limit of 64"},

		// Type 0.
		{name: "type 0", stream: frame(0, 1, []byte("x")), errSub: "type 0"},
		{name: "type 0 empty", stream: frame(0, 0, nil), errSub: "type 0"},
		{name: "type 0 after a good frame", stream: cat(enc(TypeClose, nil), frame(0, 0, nil)),
			want: []readResult{{TypeClose, nil}}, errSub: "type 0"},

		// Truncation.
		{name: "empty stream", stream: nil, err: io.EOF, bareIs: true},
		{name: "mid header 1", stream: []byte{2}, err: io.ErrUnexpectedEOF, bareIs: true},
		{name: "mid header 2", stream: []byte{2, 0}, err: io.ErrUnexpectedEOF, bareIs: true},
		{name: "mid header 3", stream: []byte{2, 0, 0}, err: io.ErrUnexpectedEOF, bareIs: true},
		{name: "mid header after a frame", stream: cat(enc(TypePing, nil), []byte{4, 0}),
			want: []readResult{{TypePing, nil}}, err: io.ErrUnexpectedEOF, bareIs: true},
		{name: "header only", stream: frame(2, 10, nil), err: io.ErrUnexpectedEOF},
		{name: "mid payload", stream: frame(2, 10, []byte("12345")), err: io.ErrUnexpectedEOF},
		{name: "mid payload one short", stream: frame(2, MaxPayload, ascii(MaxPayload-1)), err: io.ErrUnexpectedEOF},
		{name: "mid payload after a frame", stream: cat(enc(TypeHello, []byte("{}")), frame(5, 3, []byte("ab"))),
			want: []readResult{{TypeHello, []byte("{}")}}, err: io.ErrUnexpectedEOF},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"onebyte", iotest.OneByteReader},
		{"dataerr", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := NewReader(rd.wrap(bytes.NewReader(tt.stream)))
				for i, w := range tt.want {
					typ, p, err := r.ReadFrame()
					if err != nil {
						t.Fatalf("frame %d: unexpected error %v", i, err)
					}
					if typ != w.t || !bytes.Equal(p, w.payload) {
						t.Fatalf("frame %d: got %v %q, want %v %q", i, typ, short(p), w.t, short(w.payload))
					}
				}
				typ, p, err := r.ReadFrame()
				if err == nil {
					t.Fatalf("final read: got %v %q, want an error", typ, short(p))
				}
				if typ != 0 || p != nil {
					t.Errorf("final read: error %v came with %v %q, want zero values", err, typ, short(p))
				}
				switch {
				case tt.err != nil && tt.bareIs:
					if err != tt.err {
						t.Errorf("final read: error %#v, want exactly %v", err, tt.err)
					}
				case tt.err != nil:
					if !errors.Is(err, tt.err) {
						t.Errorf("final read: error %v, want one wrapping %v", err, tt.err)
					}
					if !strings.HasPrefix(err.Error(), "framing: ") {
						t.Errorf("final read: error %q does not start with \"framing: \"", err)
					}
				default:
					if !strings.Contains(err.Error(), tt.errSub) {
						t.Errorf("final read: error %q does not mention %q", err, tt.errSub)
					}
					if !strings.HasPrefix(err.Error(), "framing: ") {
						t.Errorf("final read: error %q does not start with \"framing: \"", err)
					}
					if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("final read: protocol error %v wraps an EOF", err)
					}
				}
			})
		}
	}
}

// short abbreviates long payloads in failure messages.
func short(p []byte) []byte {
	if len(p) > 32 {
		return append(p[:32:32], "..."...)
	}
	return p
}

// TestReadFrameErrorSticky checks that a corrupt header keeps failing rather
// than being skipped.
func TestReadFrameErrorSticky(t *testing.T) {
	r := NewReader(bytes.NewReader(cat(frame(3, 65, nil), enc(TypeData, []byte("x")))))
	for i := range 3 {
		if _, _, err := r.ReadFrame(); err == nil || !strings.Contains(err.Error(), "limit of 64") {
			t.Fatalf("read %d: error %v, want the limit error again", i, err)
		}
	}
}

// TestReadFrameReadError checks that a non-EOF read error is passed on.
func TestReadFrameReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(bytes.NewReader(enc(TypeData, []byte("a"))), iotest.ErrReader(boom)))
	if typ, p, err := r.ReadFrame(); err != nil || typ != TypeData || string(p) != "a" {
		t.Fatalf("first read: %v %q %v", typ, p, err)
	}
	if _, _, err := r.ReadFrame(); !errors.Is(err, boom) {
		t.Fatalf("second read: error %v, want %v", err, boom)
	}
}

type frameRec struct {
	t Type
	p []byte
}

// randomFrames returns n random valid frames; big forces the occasional
// maximum-size Data frame.
func randomFrames(rng *rand.Rand, n int) []frameRec {
	types := []Type{TypeHello, TypeData, TypePing, TypePong, TypeError, TypeClose, 8, 200}
	out := make([]frameRec, n)
	for i := range out {
		t := types[rng.IntN(len(types))]
		var size int
		switch rng.IntN(5) {
		case 0:
			size = 0
		case 1:
			size = limit(t, 0)
		default:
			size = rng.IntN(limit(t, 0) + 1)
		}
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		out[i] = frameRec{t, p}
	}
	return out
}

// countingWriter counts Write calls and passes them on.
type countingWriter struct {
	w      io.Writer
	writes int
	sizes  []int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	c.sizes = append(c.sizes, len(p))
	return c.w.Write(p)
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	frames := randomFrames(rng, 500)
	// A run of maximum-size frames that cannot fit one Writer buffer, so
	// WriteFrame must flush on its own.
	for range 2*DefaultWriterSize/MaxPayload + 3 {
		p := make([]byte, MaxPayload)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		frames = append(frames, frameRec{TypeData, p})
	}
	frames = append(frames, randomFrames(rng, 100)...)

	var buf bytes.Buffer
	cw := &countingWriter{w: &buf}
	w := NewWriter(cw)
	if err := w.WritePreamble(); err != nil {
		t.Fatal(err)
	}
	want := 0
	for i, f := range frames {
		scratch := bytes.Clone(f.p)
		if err := w.WriteFrame(f.t, scratch); err != nil {
			t.Fatalf("WriteFrame %d (%v, %d bytes): %v", i, f.t, len(f.p), err)
		}
		// WriteFrame copies: clobbering the caller's slice must not
		// change what is sent.
		for j := range scratch {
			scratch[j] ^= 0xff
		}
		want += HeaderLen + len(f.p)
		if w.Buffered() > DefaultWriterSize {
			t.Fatalf("Buffered() = %d after frame %d, over the buffer size %d", w.Buffered(), i, DefaultWriterSize)
		}
	}
	if cw.writes == 0 {
		t.Fatalf("no internal flush: WriteFrame never wrote although %d bytes of frames were written", want)
	}
	for i, n := range cw.sizes {
		if n > DefaultWriterSize {
			t.Errorf("write %d was %d bytes, over the buffer size", i, n)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Buffered() != 0 {
		t.Errorf("Buffered() = %d after Flush", w.Buffered())
	}
	preamble := len(Magic) + 2
	if buf.Len() != want+preamble {
		t.Fatalf("stream is %d bytes, want %d", buf.Len(), want+preamble)
	}
	t.Logf("%d frames, %d bytes, %d writes", len(frames), buf.Len(), cw.writes)

	for _, rd := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"half", iotest.HalfReader},
		{"onebyte", iotest.OneByteReader},
	} {
		t.Run(rd.name, func(t *testing.T) {
			r := NewReader(rd.wrap(bytes.NewReader(buf.Bytes())))
			if v, err := r.ReadPreamble(); err != nil || v != Version {
				t.Fatalf("ReadPreamble = %d, %v", v, err)
			}
			for i, f := range frames {
				typ, p, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if typ != f.t || !bytes.Equal(p, f.p) {
					t.Fatalf("frame %d: got %v (%d bytes), want %v (%d bytes)", i, typ, len(p), f.t, len(f.p))
				}
			}
			if _, _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

// TestPayloadAliasing documents that a payload aliases the Reader's buffer:
// it is right until the next ReadFrame, a copy stays right, and the payload
// itself may be overwritten by the next call.
func TestPayloadAliasing(t *testing.T) {
	a := bytes.Repeat([]byte("A"), 60000)
	b := bytes.Repeat([]byte("B"), 60000)
	r := NewReader(bytes.NewReader(cat(enc(TypeData, a), enc(TypeData, b))))
	_, p1, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p1, a) {
		t.Fatal("first payload wrong before the next call")
	}
	kept := bytes.Clone(p1)
	_, p2, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p2, b) {
		t.Fatal("second payload wrong")
	}
	if !bytes.Equal(kept, a) {
		t.Fatal("the copy of the first payload changed")
	}
	// The second frame did not fit behind the first in the buffer, so the
	// Reader moved it to the front, over the first payload.
	if bytes.Equal(p1, a) {
		t.Error("first payload still intact: expected it to alias the Reader's buffer (update this test if the Reader now copies)")
	}
}

// TestPayloadAppend checks that appending to a payload cannot scribble over
// the frames buffered behind it.
func TestPayloadAppend(t *testing.T) {
	r := NewReader(bytes.NewReader(cat(enc(TypeData, []byte("one")), enc(TypeData, []byte("two")), enc(TypePing, []byte("3")))))
	_, p, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if cap(p) != len(p) {
		t.Errorf("payload cap %d > len %d: append would write into the Reader's buffer", cap(p), len(p))
	}
	_ = append(p, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // a careless caller
	typ, p, err := r.ReadFrame()
	if err != nil || typ != TypeData || string(p) != "two" {
		t.Fatalf("second frame: %v %q %v", typ, p, err)
	}
	typ, p, err = r.ReadFrame()
	if err != nil || typ != TypePing || string(p) != "3" {
		t.Fatalf("third frame: %v %q %v", typ, p, err)
	}
}

func TestFlushOneWrite(t *testing.T) {
	for _, n := range []int{1, 2, 5, 32} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			var buf bytes.Buffer
			cw := &countingWriter{w: &buf}
			w := NewWriter(cw)
			if err := w.WritePreamble(); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteHello(&Hello{Role: "client", Mode: "tun"}); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := w.WriteFrame(TypeData, bytes.Repeat([]byte{byte(i)}, 1400)); err != nil {
					t.Fatal(err)
				}
			}
			if cw.writes != 0 {
				t.Fatalf("%d writes before Flush", cw.writes)
			}
			before := w.Buffered()
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if cw.writes != 1 {
				t.Fatalf("Flush made %d writes, want 1", cw.writes)
			}
			if cw.sizes[0] != before || buf.Len() != before {
				t.Errorf("Flush wrote %d bytes, %d were buffered", cw.sizes[0], before)
			}
			// Nothing buffered: no write at all.
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if cw.writes != 1 {
				t.Errorf("empty Flush wrote (%d writes)", cw.writes)
			}
		})
	}
}

type errWriter struct{ err error }

func (e errWriter) Write(p []byte) (int, error) { return 0, e.err }

func TestWriterErrors(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriter(errWriter{boom})
	if err := w.WriteFrame(TypeData, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want %v", err, boom)
	}
	// The internal flush of a full buffer reports the error too.
	big := make([]byte, MaxPayload)
	var err error
	for range DefaultWriterSize/MaxPayload + 1 {
		if err = w.WriteFrame(TypeData, big); err != nil {
			break
		}
	}
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFrame over a full buffer: %v, want %v", err, boom)
	}
}

func TestWriteFrameRejects(t *testing.T) {
	tests := []struct {
		t       Type
		n       int
		tooBig  bool
		wantSub string
	}{
		{TypeData, MaxPayload + 1, true, "data frame of 65537 bytes, limit 65536"},
		{200, MaxPayload + 1, true, "limit 65536"},
		{TypePing, MaxPingPayload + 1, true, "ping frame of 65 bytes, limit 64"},
		{TypePong, MaxPingPayload + 1, true, "pong frame of 65 bytes, limit 64"},
		{TypeHello, 8193, true, "hello frame of 8193 bytes, limit 8192"},
		{TypeError, 8193, true, "limit 8192"},
		{TypeClose, 8193, true, "limit 8192"},
		{0, 0, false, "type 0"},
		{0, 10, false, "type 0"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%d", tt.t, tt.n), func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			err := w.WriteFrame(tt.t, make([]byte, tt.n))
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, ErrTooLarge) != tt.tooBig {
				t.Errorf("errors.Is(%v, ErrTooLarge) = %v, want %v", err, !tt.tooBig, tt.tooBig)
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("error %q does not mention %q", err, tt.wantSub)
			}
			if w.Buffered() != 0 {
				t.Errorf("rejected frame left %d bytes buffered", w.Buffered())
			}
			// The Writer is still usable.
			if err := w.WriteFrame(TypeData, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), enc(TypeData, []byte("ok"))) {
				t.Errorf("stream after a rejected frame: %q", buf.Bytes())
			}
		})
	}
	// At the limit is fine.
	for _, typ := range []Type{TypeHello, TypeData, TypePing, TypePong, TypeError, TypeClose, 200} {
		w := NewWriter(io.Discard)
		if err := w.WriteFrame(typ, make([]byte, limit(typ, 0))); err != nil {
			t.Errorf("%v at its limit %d: %v", typ, limit(typ, 0), err)
		}
	}
}

// TestWriterEncoding pins the header layout byte for byte.
func TestWriterEncoding(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	steps := []func() error{
		w.WritePreamble,
		func() error { return w.WriteFrame(TypeData, []byte{0xde, 0xad}) },
		func() error { return w.WriteFrame(TypeClose, nil) },
		func() error { return w.WriteFrame(TypeData, make([]byte, 0x10000)) },
		w.Flush,
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	want := cat([]byte("SSHVPN/1\n"), []byte{2, 0, 0, 2, 0xde, 0xad}, []byte{6, 0, 0, 0}, []byte{2, 1, 0, 0}, make([]byte, 0x10000))
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("encoded stream differs:\n got % x\nwant % x", short(buf.Bytes()), short(want))
	}
}

// TestReaderBuffered: Buffered counts what follows the frame just read,
// not the frame itself, whose payload the Reader still holds.
func TestReaderBuffered(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.WriteFrame(TypeData, make([]byte, 100))
	w.WriteFrame(TypeData, make([]byte, 50))
	w.Flush()
	r := NewReader(&b)
	for _, want := range []int{HeaderLen + 50, 0} {
		if _, _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		if got := r.Buffered(); got != want {
			t.Errorf("Buffered() = %d, want %d", got, want)
		}
	}
}
