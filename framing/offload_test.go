package framing

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestOffloadFrames(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	big := bytes.Repeat([]byte{0xab}, MaxOffloadPayload)
	if err := w.WriteFrame(TypeOffload, big[:20]); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("offload frame before agreement: %v, want ErrTooLarge", err)
	}
	if w.Buffered() != 0 {
		t.Fatal("a refused frame left bytes behind")
	}
	w.AllowOffload(MaxOffloadPayload)
	if err := w.WriteFrame(TypeOffload, big); err != nil {
		t.Fatalf("offload frame at the limit: %v", err)
	}
	if err := w.WriteFrame(TypeOffload, append(big, 0)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("offload frame over the limit: %v", err)
	}
	if err := w.WriteFrame(TypeData, big[:MaxPayload+1]); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("agreement raised the Data limit: %v", err)
	}
	// Next and Commit: the payload goes straight into the buffer.
	room, err := w.Next(MaxOffloadPayload)
	if err != nil || len(room) != MaxOffloadPayload {
		t.Fatalf("Next: %d bytes, %v", len(room), err)
	}
	copy(room, "0123456789packet")
	if err := w.Commit(TypeOffload, 16); err != nil {
		t.Fatal(err)
	}
	room, _ = w.Next(100)
	copy(room, "plain")
	if err := w.Commit(TypeData, 5); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(TypeData, 1<<20); err == nil {
		t.Fatal("commit beyond the room accepted")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	stream := buf.Bytes()
	r := NewReader(bytes.NewReader(stream))
	if _, _, err := r.ReadFrame(); err == nil || !strings.Contains(err.Error(), "did not agree") {
		t.Fatalf("reader without agreement: %v", err)
	}
	r = NewReader(bytes.NewReader(stream))
	r.AllowOffload(MaxOffloadPayload)
	for i, want := range []struct {
		t Type
		n int
	}{{TypeOffload, MaxOffloadPayload}, {TypeOffload, 16}, {TypeData, 5}} {
		typ, p, err := r.ReadFrame()
		if err != nil || typ != want.t || len(p) != want.n {
			t.Fatalf("frame %d: %v %d bytes %v, want %v %d", i, typ, len(p), err, want.t, want.n)
		}
	}
	// A reader that agreed to less refuses more.
	r = NewReader(bytes.NewReader(stream))
	r.AllowOffload(1000)
	if _, _, err := r.ReadFrame(); err == nil || !strings.Contains(err.Error(), "limit of 1000") {
		t.Fatalf("reader with a smaller limit: %v", err)
	}
}
