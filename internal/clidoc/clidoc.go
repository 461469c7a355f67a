// Package clidoc writes what a shell and man(1) need from a kong command
// line: a man page (roff) and completions for bash, zsh and fish, all
// made from the command model itself, so that they cannot drift from the
// flags the program takes.
package clidoc

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// command is a command of the model with its flags.
type command struct {
	name  string
	help  string
	flags []*kong.Flag
}

// commands lists the visible commands of app, and its own flags as the
// command "".
func commands(app *kong.Application) []command {
	out := []command{{name: "", help: app.Help, flags: visible(app.Flags)}}
	for _, c := range app.Children {
		if c.Hidden || c.Type != kong.CommandNode {
			continue
		}
		var fs []*kong.Flag
		for _, group := range c.AllFlags(true) {
			fs = append(fs, group...)
		}
		out = append(out, command{name: c.Name, help: c.Help, flags: visible(fs)})
	}
	return out
}

func visible(fs []*kong.Flag) []*kong.Flag {
	return slices.DeleteFunc(slices.Clone(fs), func(f *kong.Flag) bool { return f.Hidden })
}

// Man writes the man page of app, section 1.
func Man(w io.Writer, app *kong.Application, date string) error {
	name := app.Name
	fmt.Fprintf(w, ".TH %s 1 %q %q \"User Commands\"\n", strings.ToUpper(name), date, name)
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", name, roff(firstLine(app.Help)))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n[\\fIflags\\fR] [\\fIuser\\fR@]\\fIhost\\fR\n.br\n.B %s\n\\fIcommand\\fR [\\fIflags\\fR]\n", name, name)
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s\n", roff(app.Help))
	for i, c := range commands(app) {
		switch {
		case c.name == "":
			fmt.Fprintf(w, ".SH GLOBAL FLAGS\n")
		case i == 1:
			fmt.Fprintf(w, ".SH COMMANDS\n")
			fallthrough
		default:
			fmt.Fprintf(w, ".SS \"%s %s\"\n%s\n", name, c.name, roff(c.help))
		}
		for _, f := range c.flags {
			fmt.Fprintf(w, ".TP\n\\fB%s\\fR\n%s\n", roff(flagLabel(f)), roff(f.Help))
		}
	}
	_, err := fmt.Fprintf(w, ".SH SEE ALSO\nssh(1), sshd_config(5), ip(8)\n")
	return err
}

// flagLabel is "-e, --ssh-cmd=CMD" for a man page.
func flagLabel(f *kong.Flag) string {
	s := "--" + f.Name
	if f.Short != 0 {
		s = "-" + string(f.Short) + ", " + s
	}
	if !f.IsBool() {
		ph := f.PlaceHolder
		if ph == "" {
			ph = strings.ToUpper(f.Name)
		}
		s += "=" + ph
	}
	return s
}

// roff escapes text for a man page: backslashes, and a leading dot or
// quote of a line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			b.WriteString(`\&`)
		}
		if line == "" {
			line = ".PP"
		}
		b.WriteString(line)
	}
	return b.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSuffix(line, ".")
}

// Bash writes a bash completion script for app.
func Bash(w io.Writer, app *kong.Application) error {
	name := app.Name
	fn := "_" + strings.ReplaceAll(name, "-", "_")
	fmt.Fprintf(w, "# bash completion for %s, made from its command line\n%s() {\n", name, fn)
	fmt.Fprintf(w, "\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd= w\n\tfor w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n\t\tcase $w in\n")
	var names []string
	for _, c := range commands(app)[1:] {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, "\t\t%s) cmd=$w; break ;;\n\t\tesac\n\tdone\n\tcase $cmd in\n", strings.Join(names, "|"))
	global := longFlags(commands(app)[0].flags)
	for _, c := range commands(app)[1:] {
		fmt.Fprintf(w, "\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c.name, strings.Join(longFlags(c.flags), " "))
	}
	fmt.Fprintf(w, "\t*) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n\tesac\n}\ncomplete -o default -F %s %s\n",
		strings.Join(append(names, global...), " "), fn, name)
	return nil
}

func longFlags(fs []*kong.Flag) []string {
	var out []string
	for _, f := range fs {
		out = append(out, "--"+f.Name)
		if f.Negated || f.Tag.Negatable != "" {
			out = append(out, "--no-"+f.Name)
		}
	}
	return out
}

// Zsh writes a zsh completion script for app.
func Zsh(w io.Writer, app *kong.Application) error {
	name := app.Name
	fmt.Fprintf(w, "#compdef %s\n# zsh completion for %s, made from its command line\n_%s() {\n\tlocal -a cmds\n\tcmds=(\n", name, name, name)
	for _, c := range commands(app)[1:] {
		fmt.Fprintf(w, "\t\t%q\n", c.name+":"+zshText(firstLine(c.help)))
	}
	fmt.Fprintf(w, "\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe 'command' cmds\n\t\t_hosts\n\t\treturn\n\tfi\n\tcase ${words[2]} in\n")
	for _, c := range commands(app)[1:] {
		fmt.Fprintf(w, "\t%s)\n\t\t_arguments", c.name)
		for _, f := range c.flags {
			fmt.Fprintf(w, " \\\n\t\t\t%q", "--"+f.Name+"["+zshText(firstLine(f.Help))+"]")
		}
		fmt.Fprintf(w, " \\\n\t\t\t'*:host:_hosts' ;;\n")
	}
	fmt.Fprintf(w, "\tesac\n}\n_%s \"$@\"\n", name)
	return nil
}

// zshText makes help text safe inside _arguments' brackets.
func zshText(s string) string {
	return strings.NewReplacer("[", "(", "]", ")", ":", " ", "'", "", `"`, "", "$", "", "`", "").Replace(s)
}

// Fish writes a fish completion script for app.
func Fish(w io.Writer, app *kong.Application) error {
	name := app.Name
	fmt.Fprintf(w, "# fish completion for %s, made from its command line\n", name)
	cmds := commands(app)
	var names []string
	for _, c := range cmds[1:] {
		names = append(names, c.name)
	}
	cond := "__fish_seen_subcommand_from " + strings.Join(names, " ")
	for _, c := range cmds[1:] {
		fmt.Fprintf(w, "complete -c %s -n 'not %s' -a %s -d %s\n", name, cond, c.name, fishQuote(firstLine(c.help)))
	}
	for _, f := range cmds[0].flags {
		fmt.Fprintf(w, "complete -c %s -l %s -d %s\n", name, f.Name, fishQuote(firstLine(f.Help)))
	}
	for _, c := range cmds[1:] {
		for _, f := range c.flags {
			short := ""
			if f.Short != 0 {
				short = " -s " + string(f.Short)
			}
			fmt.Fprintf(w, "complete -c %s -n '__fish_seen_subcommand_from %s'%s -l %s -d %s\n", name, c.name, short, f.Name, fishQuote(firstLine(f.Help)))
		}
	}
	return nil
}

func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
