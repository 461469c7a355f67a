package framing

import (
	"bytes"
	"io"
	"testing"
)

// replayReader replays a byte slice endlessly without allocating.
type replayReader struct {
	data []byte
	off  int
}

func (r *replayReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off += c
		if r.off == len(r.data) {
			r.off = 0
		}
	}
	return n, nil
}

func TestDataPathAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	payload := bytes.Repeat([]byte{0x45}, 1400)

	t.Run("write", func(t *testing.T) {
		w := NewWriter(io.Discard)
		allocs := testing.AllocsPerRun(1000, func() {
			if err := w.WriteFrame(TypeData, payload); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("WriteFrame+Flush: %v allocs per run, want 0", allocs)
		}
	})

	t.Run("write batch", func(t *testing.T) {
		w := NewWriter(io.Discard)
		allocs := testing.AllocsPerRun(100, func() {
			for range 32 {
				if err := w.WriteFrame(TypeData, payload); err != nil {
					t.Fatal(err)
				}
			}
			w.WriteFrame(TypePing, payload[:8])
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("32 frames + Flush: %v allocs per run, want 0", allocs)
		}
	})

	t.Run("read", func(t *testing.T) {
		// Frame sizes that do not divide the buffer, so frames straddle
		// refills.
		var stream bytes.Buffer
		w := NewWriter(&stream)
		for i := range 50 {
			w.WriteFrame(TypeData, payload[:1000+i*7])
		}
		w.WriteFrame(TypePing, payload[:8])
		w.Flush()
		rr := &replayReader{data: stream.Bytes()}
		if testing.AllocsPerRun(1, func() {}) != 0 {
			t.Fatal("AllocsPerRun is broken")
		}
		r := NewReader(rr)
		allocs := testing.AllocsPerRun(5000, func() {
			typ, p, err := r.ReadFrame()
			if err != nil || (typ != TypeData && typ != TypePing) || len(p) == 0 {
				t.Fatalf("ReadFrame = %v, %d bytes, %v", typ, len(p), err)
			}
		})
		if allocs != 0 {
			t.Errorf("ReadFrame: %v allocs per run, want 0", allocs)
		}
	})
}

func TestReplayReader(t *testing.T) {
	rr := &replayReader{data: []byte("abc")}
	p := make([]byte, 7)
	if n, err := rr.Read(p); n != 7 || err != nil || string(p) != "abcabca" {
		t.Fatalf("Read = %d, %v, %q", n, err, p)
	}
	if n, _ := rr.Read(p[:2]); n != 2 || string(p[:2]) != "bc" {
		t.Fatalf("Read = %d, %q", n, p[:2])
	}
}
