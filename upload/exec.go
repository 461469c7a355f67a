package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	maxStdout    = 1 << 20 // bytes of a command's stdout kept (the last ones)
	keepStderr   = 4096    // bytes of a command's stderr kept (the last ones)
	maxStderrMsg = 300     // bytes of stderr quoted in an error
	waitDelay    = 3 * time.Second
)

// ExecRunner returns the Runner that runs "sshArgv... CMD", such as
// ["ssh", "-F", "cfg", "root@server"]: the caller adds any options and "--".
// The command's stdin is the Runner's (nil: /dev/null). It keeps the last
// MiB of stdout; if the command fails, the error quotes the end of its
// stderr, with control characters removed. A child that keeps ssh's pipes
// open after ssh exits (a ControlPersist master) does not hold it up.
func ExecRunner(sshArgv []string) Runner { return ExecRunnerWith(sshArgv, nil) }

// ExecRunnerWith is ExecRunner with prepare, if not nil, called on each
// command before it starts (to run ssh as another account, say).
func ExecRunnerWith(sshArgv []string, prepare func(*exec.Cmd) error) Runner {
	argv := slices.Clone(sshArgv)
	return func(ctx context.Context, command string, stdin io.Reader) ([]byte, error) {
		if len(argv) == 0 {
			return nil, errors.New("no command to reach the server")
		}
		cmd := exec.CommandContext(ctx, argv[0], append(slices.Clone(argv[1:]), command)...)
		cmd.Stdin = stdin
		stdout, stderr := &tailBuffer{max: maxStdout}, &tailBuffer{max: keepStderr}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.WaitDelay = waitDelay
		if prepare != nil {
			if err := prepare(cmd); err != nil {
				return nil, err
			}
		}
		err := cmd.Run()
		name := filepath.Base(argv[0])
		var ee *exec.ExitError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return stdout.Bytes(), fmt.Errorf("%s: %w", name, ctx.Err())
		case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
			// ssh succeeded; something it started kept the pipes open.
		case errors.As(err, &ee):
			how := fmt.Sprintf("exited with status %d", ee.ExitCode())
			if ee.ExitCode() < 0 {
				how = "ended: " + ee.ProcessState.String()
			}
			if msg := cleanStderr(stderr.Bytes()); msg != "" {
				return stdout.Bytes(), fmt.Errorf("%s %s: %s", name, how, msg)
			}
			return stdout.Bytes(), fmt.Errorf("%s %s", name, how)
		default:
			return stdout.Bytes(), err
		}
		return stdout.Bytes(), nil
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	if len(t.b) > t.max {
		return t.b[len(t.b)-t.max:]
	}
	return t.b
}

// cleanStderr makes a command's stderr fit for an error message: its
// non-empty lines joined with "; ", without control or format characters,
// shortened to its last maxStderrMsg bytes.
func cleanStderr(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	var lines []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.Map(func(r rune) rune {
			switch {
			case r == '\t':
				return ' '
			case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
				return -1
			}
			return r
		}, l)
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, "; ")
	if len(s) > maxStderrMsg {
		s = s[len(s)-maxStderrMsg:]
		for len(s) > 0 && !utf8.RuneStart(s[0]) {
			s = s[1:]
		}
		s = "…" + s
	}
	return s
}
