// Command benchreport writes scripts/bench.sh's reports from the raw
// figures of one or more runs (see package benchreport):
//
//	benchreport -md bench.md -json bench.json run1.tsv [run2.tsv ...]
//
// Without -md the Markdown table goes to standard output.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sshvpn/sshvpn/internal/benchreport"
)

func main() {
	md := flag.String("md", "", "write the Markdown table here (default: standard output)")
	js := flag.String("json", "", "write the JSON report here")
	flag.Parse()
	if err := run(*md, *js, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(md, js string, files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("no input: name the raw figures of one or more runs")
	}
	var runs []*benchreport.Run
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r, err := benchreport.Parse(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		runs = append(runs, r)
	}
	write := func(name string, to func(io.Writer) error) error {
		if name == "" {
			return to(os.Stdout)
		}
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		if err := to(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := write(md, func(w io.Writer) error { return benchreport.WriteMarkdown(w, runs) }); err != nil {
		return err
	}
	if js != "" {
		return write(js, func(w io.Writer) error { return benchreport.WriteJSON(w, runs) })
	}
	return nil
}
