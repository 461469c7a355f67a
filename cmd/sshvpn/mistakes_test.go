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
	for _, tt := range []struct {
		args []string
		want string // substring of the error; "" for none
	}{
		{[]string{"stauts"}, `did you mean "status"`},
		{[]string{"-v", "remot"}, `did you mean "remote"`},
		{[]string{"statsu", "--json"}, `did you mean "status"`},
		{[]string{"status"}, ""},
		{[]string{"root@stauts"}, ""},
		{[]string{"stauts.example.org"}, ""},
		{[]string{"connect", "stauts"}, ""},
		{[]string{"gw"}, ""},
		{[]string{"--", "stauts"}, ""},
	} {
		err := mistyped(tt.args, parser.Model.Children)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("mistyped(%q) = %v, want %q", tt.args, err, tt.want)
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
	if distance("stauts", "status") != 2 || distance("", "ab") != 2 || distance("same", "same") != 0 {
		t.Error("distance")
	}
}
