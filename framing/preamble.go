package framing

import (
	"bytes"
	"fmt"
	"strconv"
)

// Version is the protocol version this package speaks.
const Version = 1

// Magic starts every sshvpn stream.
const Magic = "SSHVPN/"

// maxPreamble caps the preamble line: the magic, up to 3 digits and "\n".
const maxPreamble = len(Magic) + 4

// quoteLimit caps how many bytes a PreambleError quotes.
const quoteLimit = 200

// PreambleError reports a stream that did not start with the sshvpn preamble:
// usually a shell banner or a shell error in place of sshvpn.
type PreambleError struct {
	Got []byte // what arrived instead, up to 200 bytes
}

func (e *PreambleError) Error() string {
	return fmt.Sprintf("framing: expected the sshvpn handshake but the peer sent %q: "+
		"something printed to the stream before sshvpn started (a login banner, motd or shell startup "+
		"file echoing text?); make the remote account's startup files silent for non-interactive sessions",
		e.Got)
}

// VersionError reports a peer speaking a protocol version this build does not.
type VersionError struct {
	Peer int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("framing: peer speaks sshvpn protocol %d, this build speaks %d; install the same sshvpn release on both ends", e.Peer, Version)
}

// WritePreamble buffers the preamble; Flush sends it.
func (w *Writer) WritePreamble() error {
	if w.started || len(w.buf) != 0 {
		return fmt.Errorf("framing: preamble must come first")
	}
	w.started = true
	w.buf = append(w.buf, Magic...)
	w.buf = strconv.AppendInt(w.buf, Version, 10)
	w.buf = append(w.buf, '\n')
	return nil
}

// ReadPreamble reads the peer's preamble and returns its version. Anything
// else gives a *PreambleError quoting what arrived; a known preamble with a
// version this build cannot speak gives a *VersionError. An empty stream
// gives io.EOF, so that callers can look for why the peer went away.
func (r *Reader) ReadPreamble() (int, error) {
	line, err := r.peekLine()
	if len(line) == 0 && err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(line, []byte(Magic)) || line[len(line)-1] != '\n' {
		return 0, &PreambleError{Got: r.quote(line)}
	}
	digits := line[len(Magic) : len(line)-1]
	v, perr := strconv.Atoi(string(digits))
	if perr != nil || v < 1 || len(digits) > 3 || digits[0] < '0' || digits[0] > '9' {
		return 0, &PreambleError{Got: r.quote(line)}
	}
	r.br.Discard(len(line))
	if v != Version {
		return v, &VersionError{Peer: v}
	}
	return v, nil
}

// peekLine returns the bytes up to and including the first newline, reading
// no more than maxPreamble bytes and stopping early as soon as they cannot
// be a preamble. A short line without newline comes with the read error.
func (r *Reader) peekLine() ([]byte, error) {
	for n := 1; n <= maxPreamble; n++ {
		b, err := r.br.Peek(n)
		if err != nil {
			return b, err
		}
		c := b[n-1]
		if n <= len(Magic) && c != Magic[n-1] {
			return b, nil
		}
		if c == '\n' {
			return b, nil
		}
	}
	b, _ := r.br.Peek(maxPreamble)
	return b, nil
}

// quote returns what arrived in place of a preamble: the bad start plus
// whatever else is already buffered, up to quoteLimit bytes.
func (r *Reader) quote(start []byte) []byte {
	n := r.br.Buffered()
	if n > quoteLimit {
		n = quoteLimit
	}
	if n < len(start) {
		n = len(start)
	}
	b, _ := r.br.Peek(n)
	return bytes.Clone(b)
}
