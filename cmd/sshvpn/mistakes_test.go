package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestMistyped(t *testing.T) {
	var cli CLI
	parser, err := kong.New(&cli)
	if err != nil {
		t.Fatal(err)
	}
	known := func(name string) bool { return name == "stats" }
	for _, tt := range []struct {
		dest string
		want string // substring of the error; "" for none
	}{
		{"stauts", `did you mean "status"`},
		{"remot", `did you mean "remote"`},
		{"statsu", `did you mean "status"`},
		{"stats", ""}, // a host of that name exists
		{"status", ""},
		{"root@stauts", ""},
		{"stauts.example.org", ""},
		{"gw", ""},
		{"tap", ""}, // "up" is too short to be mistyped
		{"vpn", ""},
		{"dwn", `did you mean "down"`},
		{"donw", `did you mean "down"`},
	} {
		err := mistyped(tt.dest, parser.Model.Children, known)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("mistyped(%q) = %v, want %q", tt.dest, err, tt.want)
		}
	}
	// Through the command line: a flag's value is no destination, and a
	// forced command is no typo.
	for _, args := range [][]string{{"--remote", "--mode", "tap"}, {"remote", "--dev", "stauts"}} {
		var c CLI
		p, _ := kong.New(&c)
		kctx, err := p.Parse(remoteFlag(args))
		if err != nil || kctx.Command() != "remote" {
			t.Errorf("%q: %v, %q", args, err, kctx.Command())
		}
	}
}

func TestFlagHint(t *testing.T) {
	if h := flagHint(errors.New(`unknown flag -r, did you mean one of "-h", "-v"?`)); !strings.Contains(h, "sshuttle") {
		t.Errorf("hint for -r: %q", h)
	}
	if h := flagHint(errors.New(`unknown flag --reconnect-trie, did you mean "--reconnect-tries"?`)); h != "" {
		t.Errorf("hint for a typo of --reconnect-tries: %q", h)
	}
	if distance("stauts", "status") != 1 || distance("", "ab") != 2 || distance("same", "same") != 0 || distance("donw", "down") != 1 {
		t.Error("distance")
	}
}
