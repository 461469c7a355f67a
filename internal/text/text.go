// Package text makes text that comes from the network (a peer's error, a
// server's log line, ssh's stderr) safe to show on a terminal or write to
// a log: no terminal escapes, no bidi overrides, valid UTF-8; and how far
// a mistyped word is from the one meant.
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

// Distance is the edit distance between a and b, a swap of two adjacent
// letters counting as one edit (optimal string alignment): how far a
// mistyped word is from the one meant.
func Distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
