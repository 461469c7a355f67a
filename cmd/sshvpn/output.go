package main

import (
	"runtime/debug"
	"strings"

	"github.com/sshvpn/sshvpn/internal/text"
)

// version and commit are set at build time (scripts/build.sh):
// -ldflags "-X main.version=... -X main.commit=...".
var version, commit = "", ""

// versionLine is what --version prints: the version and the commit it
// was built from, from the build's flags, else from Go's record of the
// repository (none with -buildvcs=false: the release build sets both).
func versionLine() string {
	c := commit
	if bi, ok := debug.ReadBuildInfo(); ok && c == "" {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				c = s.Value + c
			case s.Key == "vcs.modified" && s.Value == "true":
				c += "-dirty"
			}
		}
	}
	if c == "" || strings.HasPrefix(c, "-") {
		c = "unknown: build with scripts/build.sh"
	}
	return "sshvpn " + versionString() + " (commit " + c + ")"
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// verbosity is -v and -q.
type verbosity struct{ verbose, quiet bool }

// silentError is an error that has been reported already (the remote side
// told the client in an Error frame, and its admin in the system log): run
// exits non-zero without printing it again.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

// sanitize makes text that may come from the network safe for a terminal
// or a log line.
func sanitize(s string) string { return text.Clean(s, true) }
