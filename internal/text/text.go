// Package text makes text that comes from the network (a peer's error, a
// server's log line, ssh's stderr) safe to show on a terminal or write to
// a log: no terminal escapes, no bidi overrides, valid UTF-8.
package text

import (
	"strings"
	"unicode"
)

// Clean replaces every rune that is not graphic (C0 and C1 controls, so
// terminal escapes; format characters such as bidi overrides) and every
// invalid byte with '?'. With lines, newlines and tabs stay; without, they
// become spaces, so the text is one line.
func Clean(s string, lines bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			if lines {
				return r
			}
			return ' '
		case r == unicode.ReplacementChar || !unicode.IsGraphic(r):
			return '?'
		}
		return r
	}, s)
}
