package framing

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary streams to a Reader. It must never panic, never
// hand out a payload over its type's limit, and end every stream with an
// error. Seeds live in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	f.Add([]byte("SSHVPN/1\n"))
	f.Add([]byte("SSHVPN/1\n\x02\x00\x00\x03abc\x03\x00\x00\x01p"))
	// One Reader buffer for all runs: allocating 64 KiB per run slows the
	// fuzzer, and its minimizer most.
	r := NewReader(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		r.br.Reset(bytes.NewReader(data))
		r.pending = 0
		_, err := r.ReadPreamble()
		var pe *PreambleError
		if errors.As(err, &pe) {
			if len(pe.Got) == 0 || len(pe.Got) > quoteLimit {
				t.Fatalf("PreambleError quotes %d bytes", len(pe.Got))
			}
			if !bytes.HasPrefix(data, pe.Got) {
				t.Fatalf("PreambleError quotes %q, which does not start the stream", pe.Got)
			}
			_ = pe.Error()
		}
		var ve *VersionError
		if errors.As(err, &ve) && ve.Peer == Version {
			t.Fatalf("VersionError for our own version")
		}
		if err == nil || ve != nil {
			// Only "SSHVPN/" and one to three decimal digits and a
			// newline is a preamble.
			line, _, ok := bytes.Cut(data, []byte("\n"))
			digits, magic := bytes.CutPrefix(line, []byte(Magic))
			if !ok || !magic || len(digits) < 1 || len(digits) > 3 || len(bytes.Trim(digits, "0123456789")) != 0 {
				t.Fatalf("accepted preamble %q (error %v)", data[:min(len(data), 16)], err)
			}
		}
		// Whatever the preamble gave, the frame reader must cope with
		// what follows.
		consumed := 0
		for frames := 0; ; frames++ {
			typ, p, err := r.ReadFrame()
			if err != nil {
				if typ != 0 || p != nil {
					t.Fatalf("error %v with type %v and %d bytes", err, typ, len(p))
				}
				break
			}
			if typ == 0 {
				t.Fatalf("frame %d: type 0 accepted", frames)
			}
			if len(p) > limit(typ, 0) {
				t.Fatalf("frame %d: %v payload of %d bytes, over the limit %d", frames, typ, len(p), limit(typ, 0))
			}
			consumed += HeaderLen + len(p)
			if consumed > len(data) {
				t.Fatalf("frames add up to %d bytes, more than the %d in the stream", consumed, len(data))
			}
			if frames > len(data) {
				t.Fatal("more frames than bytes")
			}
		}
	})
}

// FuzzRoundTrip writes one frame and reads it back. Invalid frames must be
// refused by the Writer with nothing buffered. Seeds live in
// testdata/fuzz/FuzzRoundTrip.
func FuzzRoundTrip(f *testing.F) {
	f.Add(byte(TypeData), []byte("\x45\x00\x00\x14"))
	// Buffers reused by all runs: allocating 320 KiB per run slows the
	// fuzzer, and its minimizer most.
	var buf bytes.Buffer
	wbuf := make([]byte, 0, DefaultWriterSize)
	r := NewReader(nil)
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		buf.Reset()
		w := &Writer{w: &buf, buf: wbuf[:0]}
		if err := w.WritePreamble(); err != nil {
			t.Fatal(err)
		}
		err := w.WriteFrame(Type(typ), payload)
		switch {
		case typ == 0:
			if err == nil {
				t.Fatal("type 0 accepted")
			}
		case len(payload) > limit(Type(typ), 0):
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes of %v: error %v, want ErrTooLarge", len(payload), Type(typ), err)
			}
		default:
			if err != nil {
				t.Fatalf("valid frame refused: %v", err)
			}
		}
		valid := err == nil
		// A second copy, so a frame is read from behind another.
		if valid {
			if err := w.WriteFrame(Type(typ), payload); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteFrame(TypeClose, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}

		r.br.Reset(&buf)
		r.pending = 0
		if v, err := r.ReadPreamble(); err != nil || v != Version {
			t.Fatalf("ReadPreamble = %d, %v", v, err)
		}
		if valid {
			for i := range 2 {
				gt, gp, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("copy %d: %v", i, err)
				}
				if gt != Type(typ) || !bytes.Equal(gp, payload) {
					t.Fatalf("copy %d: got %v %q, want %v %q", i, gt, gp, Type(typ), payload)
				}
			}
		}
		if gt, gp, err := r.ReadFrame(); err != nil || gt != TypeClose || len(gp) != 0 {
			t.Fatalf("trailer: %v %q %v", gt, gp, err)
		}
		if _, _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("end: %v, want io.EOF", err)
		}
	})
}
