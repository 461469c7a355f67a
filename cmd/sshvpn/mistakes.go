package main

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kong"
)

// mistyped catches a destination that is really a mistyped command
// ("sshvpn stauts"), which would otherwise be taken for a host name and
// cost an ssh attempt: a lone word without '@', '.' or ':' within two
// edits of a command's name.
func mistyped(args []string, cmds []*kong.Node) error {
	var words []string
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if !strings.HasPrefix(a, "-") {
			words = append(words, a)
		}
	}
	if len(words) != 1 || strings.ContainsAny(words[0], "@.:") {
		return nil
	}
	w := words[0]
	for _, c := range cmds {
		if c.Hidden || c.Name == w {
			continue
		}
		if d := distance(w, c.Name); d > 0 && d <= 2 && len(w) > 2 {
			return fmt.Errorf("%q is not a command; did you mean %q? (To connect to a host called %s, write \"sshvpn connect %s\".)", w, c.Name, w, w)
		}
	}
	return nil
}

// flagHint explains flags that users of other tools reach for.
func flagHint(err error) string {
	msg := err.Error() + ","
	switch {
	case strings.HasPrefix(msg, "unknown flag -r,"), strings.HasPrefix(msg, "unknown flag --remote-host"):
		return "sshuttle's -r user@host is sshvpn's plain argument (sshvpn user@host), and its subnets are --route CIDR (0/0 is --default-route)."
	case strings.HasPrefix(msg, "unknown flag -w,"):
		return "ssh -w's tunnel is sshvpn's default: sshvpn user@host (--openssh-tun --native uses ssh -w's channel)."
	}
	return ""
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
