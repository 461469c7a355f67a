package main

import (
	"runtime/debug"

	"github.com/sshvpn/sshvpn/internal/text"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

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
