package spawn

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{``, nil},
		{`   `, nil},
		{"\t \n", nil},
		{`ssh`, []string{"ssh"}},
		{`ssh -p 2222`, []string{"ssh", "-p", "2222"}},
		{"  ssh \t -p\t\t2222  \n", []string{"ssh", "-p", "2222"}},
		{`ssh -i '/home/me/my key'`, []string{"ssh", "-i", "/home/me/my key"}},
		{`'a b'c'd'`, []string{"a bcd"}},
		{`'single "double" \back $dollar'`, []string{`single "double" \back $dollar`}},
		{`''`, []string{""}},
		{`a '' b`, []string{"a", "", "b"}},
		{`""`, []string{""}},
		{`"a b"`, []string{"a b"}},
		{`"say \"hi\""`, []string{`say "hi"`}},
		{`"back\\slash"`, []string{`back\slash`}},
		{`"\$HOME"`, []string{`$HOME`}},
		{"\"\\`cmd\\`\"", []string{"`cmd`"}},
		{`"$HOME"`, []string{`$HOME`}}, // no expansion
		{`"\n\a"`, []string{`\n\a`}},   // other backslashes are kept
		{`"it's"`, []string{`it's`}},
		{`x"y z"w`, []string{"xy zw"}},
		{`a\ b`, []string{"a b"}},
		{`\'quoted\'`, []string{`'quoted'`}},
		{`\"`, []string{`"`}},
		{`\\`, []string{`\`}},
		{`\a\b`, []string{"ab"}},
		{`a\	b`, []string{"a\tb"}},
		{`ssh -o "ProxyCommand=ssh -W %h:%p jump"`, []string{"ssh", "-o", "ProxyCommand=ssh -W %h:%p jump"}},
		{`ssh -o 'ProxyCommand ssh -W %h:%p jump' -p 22`, []string{"ssh", "-o", "ProxyCommand ssh -W %h:%p jump", "-p", "22"}},
		{`/usr/local/bin/sshvpn --remote --mtu=1400`, []string{"/usr/local/bin/sshvpn", "--remote", "--mtu=1400"}},
		{`ünïcödé "☃ x"`, []string{"ünïcödé", "☃ x"}},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if err != nil {
			t.Errorf("SplitCommand(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitCommandErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`'`, "unterminated single quote"},
		{`ssh -o 'ProxyCommand=x`, "unterminated single quote"},
		{`"`, "unterminated double quote"},
		{`ssh "-p 22`, "unterminated double quote"},
		{`"abc\"`, "unterminated double quote"},
		{`"abc\`, "unterminated double quote"},
		{`\`, "lone backslash"},
		{`ssh \`, "lone backslash"},
		{`ssh -p 22\`, "lone backslash"},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", tt.in, got)
			continue
		}
		if got != nil {
			t.Errorf("SplitCommand(%q) returned %q with its error", tt.in, got)
		}
		if !strings.HasPrefix(err.Error(), "spawn:") {
			t.Errorf("SplitCommand(%q): error %q does not start with \"spawn:\"", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SplitCommand(%q): error %q does not mention %q", tt.in, err, tt.want)
		}
	}
}
