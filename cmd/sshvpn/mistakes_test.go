package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/sshvpn/sshvpn/internal/text"
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
	if text.Distance("stauts", "status") != 1 || text.Distance("", "ab") != 2 || text.Distance("same", "same") != 0 || text.Distance("donw", "down") != 1 {
		t.Error("distance")
	}
}

// TestWordsAndArgHints: help and version are commands, not hosts; an
// argument too many gets a hint when it is a mistyped command or a subnet
// in sshuttle's manner.
func TestWordsAndArgHints(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"help"}, []string{"--help"}},
		{[]string{"help", "connect"}, []string{"connect", "--help"}},
		{[]string{"version"}, []string{"--version"}},
		{[]string{"gw"}, []string{"gw"}},
		{[]string{"connect", "help"}, []string{"connect", "help"}}, // a host called help
	} {
		if got := commandWords(tt.in); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("commandWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var cli CLI
	parser, err := kong.New(&cli)
	if err != nil {
		t.Fatal(err)
	}
	unexpected := errors.New("unexpected argument x")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"donw", "office"}, `did you mean "down"`},
		{[]string{"root@server", "0/0"}, "--default-route"},
		{[]string{"-v", "root@server", "10.0.0.0/8"}, "--route CIDR"},
		{[]string{"root@server", "extra"}, ""},
	} {
		if got := argHint(tt.args, unexpected, parser.Model.Children); (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
			t.Errorf("argHint(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
	if err := mistyped("stat", parser.Model.Children, nil); err == nil || !strings.Contains(err.Error(), `"status"`) {
		t.Errorf("mistyped(stat) = %v, want a hint for status", err)
	}
}
