package framing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadPreamble(t *testing.T) {
	banner10k := strings.Repeat("This system is for authorised users only. ", 250) // > 10 KB
	tests := []struct {
		name    string
		stream  string
		version int    // want this version and no error
		quote   string // want a *PreambleError with Got == quote
		peer    int    // want a *VersionError for this version
		eof     bool   // want io.EOF
		rest    string // for success and VersionError: what the next bytes are
	}{
		{name: "valid", stream: "SSHVPN/1\n", version: 1},
		{name: "valid then frame", stream: "SSHVPN/1\n\x03\x00\x00\x01x", version: 1, rest: "\x03\x00\x00\x01x"},
		{name: "banner before preamble", stream: "Welcome to host\nSSHVPN/1\n", quote: "Welcome to host\nSSHVPN/1\n"},
		{name: "command not found", stream: "bash: sshvpn: command not found\n", quote: "bash: sshvpn: command not found\n"},
		{name: "short then EOF", stream: "SSH", quote: "SSH"},
		{name: "magic then EOF", stream: "SSHVPN/", quote: "SSHVPN/"},
		{name: "no newline then EOF", stream: "SSHVPN/1", quote: "SSHVPN/1"},
		{name: "not a number", stream: "SSHVPN/x\n", quote: "SSHVPN/x\n"},
		{name: "no digits", stream: "SSHVPN/\n", quote: "SSHVPN/\n"},
		{name: "four digits", stream: "SSHVPN/1234\n", quote: "SSHVPN/1234\n"},
		{name: "many digits", stream: "SSHVPN/100000000000000000000\n", quote: "SSHVPN/100000000000000000000\n"},
		{name: "zero", stream: "SSHVPN/0\n", quote: "SSHVPN/0\n"},
		{name: "negative", stream: "SSHVPN/-1\n", quote: "SSHVPN/-1\n"},
		{name: "plus sign", stream: "SSHVPN/+1\n", quote: "SSHVPN/+1\n"},
		{name: "space", stream: "SSHVPN/ 1\n", quote: "SSHVPN/ 1\n"},
		{name: "crlf", stream: "SSHVPN/1\r\n", quote: "SSHVPN/1\r\n"},
		{name: "lower case", stream: "sshvpn/1\n", quote: "sshvpn/1\n"},
		{name: "shell prompt", stream: "$ ", quote: "$ "},
		{name: "frame instead of preamble", stream: "\x02\x00\x00\x01x", quote: "\x02\x00\x00\x01x"},
		{name: "10 KB banner", stream: banner10k + "SSHVPN/1\n", quote: banner10k[:200]},
		{name: "version 2", stream: "SSHVPN/2\n", peer: 2},
		{name: "version 999", stream: "SSHVPN/999\nrest", peer: 999, rest: "rest"},
		{name: "empty", stream: "", eof: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.stream))
			v, err := r.ReadPreamble()
			switch {
			case tt.version != 0:
				if err != nil || v != tt.version {
					t.Fatalf("ReadPreamble = %d, %v; want %d, nil", v, err, tt.version)
				}
			case tt.quote != "":
				var pe *PreambleError
				if !errors.As(err, &pe) {
					t.Fatalf("ReadPreamble = %d, %v; want a *PreambleError", v, err)
				}
				if v != 0 {
					t.Errorf("version %d with a PreambleError", v)
				}
				if string(pe.Got) != tt.quote {
					t.Errorf("Got = %q, want %q", pe.Got, tt.quote)
				}
				if len(pe.Got) > quoteLimit {
					t.Errorf("quoted %d bytes, over the cap of %d", len(pe.Got), quoteLimit)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "framing: ") {
					t.Errorf("error %q does not start with \"framing: \"", msg)
				}
				if q := fmt.Sprintf("%q", tt.quote); !strings.Contains(msg, q) {
					t.Errorf("error %q does not quote the banner as %s", msg, q)
				}
				for _, advice := range []string{"login banner", "startup", "silent"} {
					if !strings.Contains(msg, advice) {
						t.Errorf("error %q lacks the advice %q", msg, advice)
					}
				}
				return
			case tt.peer != 0:
				var ve *VersionError
				if !errors.As(err, &ve) {
					t.Fatalf("ReadPreamble = %d, %v; want a *VersionError", v, err)
				}
				if ve.Peer != tt.peer || v != tt.peer {
					t.Errorf("Peer = %d, version %d, want %d", ve.Peer, v, tt.peer)
				}
				msg := err.Error()
				if want := fmt.Sprintf("peer speaks sshvpn protocol %d, this build speaks %d", tt.peer, Version); !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
				if !strings.Contains(msg, "same sshvpn release") {
					t.Errorf("error %q lacks advice", msg)
				}
			case tt.eof:
				if err != io.EOF || v != 0 {
					t.Fatalf("ReadPreamble = %d, %v; want 0, io.EOF", v, err)
				}
				return
			}
			// The preamble line, and only it, was consumed.
			rest, err := io.ReadAll(r.br)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != tt.rest {
				t.Errorf("after the preamble the stream holds %q, want %q", rest, tt.rest)
			}
		})
	}
}

// TestReadPreambleSlow feeds the good and bad preambles a byte at a time,
// as a slow ssh might.
func TestReadPreambleSlow(t *testing.T) {
	r := NewReader(iotest.OneByteReader(strings.NewReader("SSHVPN/1\n\x06\x00\x00\x00")))
	if v, err := r.ReadPreamble(); err != nil || v != 1 {
		t.Fatalf("ReadPreamble = %d, %v", v, err)
	}
	if typ, p, err := r.ReadFrame(); err != nil || typ != TypeClose || len(p) != 0 {
		t.Fatalf("ReadFrame = %v %q %v", typ, p, err)
	}

	r = NewReader(iotest.OneByteReader(strings.NewReader("bash: sshvpn: command not found\n")))
	_, err := r.ReadPreamble()
	var pe *PreambleError
	if !errors.As(err, &pe) {
		t.Fatalf("ReadPreamble: %v, want a *PreambleError", err)
	}
	// Only what had arrived can be quoted, but at least the bad start is.
	if !bytes.HasPrefix([]byte("bash: sshvpn: command not found\n"), pe.Got) || len(pe.Got) == 0 {
		t.Errorf("Got = %q", pe.Got)
	}
}

// TestReadPreambleReadError checks that a failing stream before any byte
// reports the read error itself.
func TestReadPreambleReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(iotest.ErrReader(boom))
	if _, err := r.ReadPreamble(); !errors.Is(err, boom) {
		t.Fatalf("ReadPreamble: %v, want %v", err, boom)
	}
}

func TestPreambleErrorCap(t *testing.T) {
	// The error text quotes at most quoteLimit bytes even of a huge banner.
	r := NewReader(strings.NewReader(strings.Repeat("x", 10<<10)))
	_, err := r.ReadPreamble()
	var pe *PreambleError
	if !errors.As(err, &pe) {
		t.Fatalf("ReadPreamble: %v", err)
	}
	if len(pe.Got) != quoteLimit {
		t.Errorf("quoted %d bytes, want %d", len(pe.Got), quoteLimit)
	}
	if len(err.Error()) > quoteLimit+400 {
		t.Errorf("error text is %d bytes long", len(err.Error()))
	}
}

func TestWritePreamble(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WritePreamble(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatal("WritePreamble wrote before Flush")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "SSHVPN/1\n" {
		t.Fatalf("preamble %q, want %q", got, "SSHVPN/1\n")
	}
	if got := fmt.Sprintf("%s%d\n", Magic, Version); got != "SSHVPN/1\n" {
		t.Fatalf("Magic+Version = %q", got)
	}
}

func TestWritePreambleNotFirst(t *testing.T) {
	tests := []struct {
		name   string
		before func(w *Writer) error
	}{
		{"after a buffered frame", func(w *Writer) error { return w.WriteFrame(TypeData, []byte("x")) }},
		{"after an empty frame", func(w *Writer) error { return w.WriteFrame(TypeClose, nil) }},
		{"after a flushed frame", func(w *Writer) error {
			if err := w.WriteFrame(TypeData, []byte("x")); err != nil {
				return err
			}
			return w.Flush()
		}},
		{"twice", func(w *Writer) error { return w.WritePreamble() }},
		{"twice with flush", func(w *Writer) error {
			if err := w.WritePreamble(); err != nil {
				return err
			}
			return w.Flush()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			if err := tt.before(w); err != nil {
				t.Fatal(err)
			}
			before := w.Buffered()
			err := w.WritePreamble()
			if err == nil {
				t.Fatal("WritePreamble accepted when not first")
			}
			if !strings.HasPrefix(err.Error(), "framing: ") || !strings.Contains(err.Error(), "first") {
				t.Errorf("error %q", err)
			}
			if w.Buffered() != before {
				t.Errorf("rejected preamble changed the buffer from %d to %d bytes", before, w.Buffered())
			}
		})
	}
}
