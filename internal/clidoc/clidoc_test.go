package clidoc

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

type testCLI struct {
	Verbose bool `short:"v" help:"Say more."`
	Connect struct {
		Route []string `placeholder:"CIDR" help:"Route [this] network; it's $quoted."`
		Host  string   `arg:""`
	} `cmd:"" help:"Connect to a host."`
	Status struct {
		All    bool `help:"Every namespace."`
		Secret bool `hidden:""`
	} `cmd:"" help:"List tunnels."`
	Internal struct{} `cmd:"" hidden:""`
}

func model(t *testing.T) *kong.Application {
	var cli testCLI
	p, err := kong.New(&cli, kong.Name("tool"), kong.Description("tool does things.\n\n.dots and \\backslashes"))
	if err != nil {
		t.Fatal(err)
	}
	return p.Model
}

// TestOutputs: every generator names the visible commands and flags and
// not the hidden ones, and what it writes parses in its shell (bash
// always; zsh and fish where installed).
func TestOutputs(t *testing.T) {
	app := model(t)
	for _, g := range []struct {
		name  string
		gen   func(*bytes.Buffer) error
		check []string // a parser that must accept it
	}{
		{"bash", func(b *bytes.Buffer) error { return Bash(b, app) }, []string{"bash", "-n"}},
		{"zsh", func(b *bytes.Buffer) error { return Zsh(b, app) }, []string{"zsh", "-n"}},
		{"fish", func(b *bytes.Buffer) error { return Fish(b, app) }, []string{"fish", "-n"}},
		{"man", func(b *bytes.Buffer) error { return Man(b, app, "tool 1.0") }, []string{"groff", "-man", "-Tutf8", "-ww", "-z"}},
	} {
		var b bytes.Buffer
		if err := g.gen(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{"connect", "status", "route", "all"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: no %q in\n%s", g.name, want, out)
			}
		}
		if strings.Contains(out, "secret") || strings.Contains(out, "internal") {
			t.Errorf("%s: a hidden command or flag:\n%s", g.name, out)
		}
		if _, err := exec.LookPath(g.check[0]); err != nil {
			if g.name == "bash" {
				t.Fatalf("no bash")
			}
			continue
		}
		file := filepath.Join(t.TempDir(), "out")
		os.WriteFile(file, b.Bytes(), 0o644)
		if out, err := exec.Command(g.check[0], append(g.check[1:], file)...).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: %s does not take it: %v %s\n%s", g.name, g.check[0], err, out, b.String())
		}
	}
}

// TestManEscapes: a line of help that starts with a dot, and backslashes,
// cannot become roff requests.
func TestManEscapes(t *testing.T) {
	var b bytes.Buffer
	Man(&b, model(t), "tool 1.0")
	if !strings.Contains(b.String(), `\&.dots and \ebackslashes`) {
		t.Errorf("unescaped:\n%s", b.String())
	}
}
