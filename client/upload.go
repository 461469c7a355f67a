package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/upload"
)

// Upload makes sure the server has this sshvpn (--upload) and runs that
// copy in place of the sshvpn the remote command names (see package
// upload). The ssh binary uploads once, before the first connection;
// --native checks (and, if need be, copies) on each connection, over that
// connection.
type Upload struct {
	Binary  string // the file to copy (--upload-binary); this executable when empty
	Version string // names the copy on the server
	// Prepare, if set, prepares the ssh commands that upload (under
	// sudo: run them as the invoking user).
	Prepare func(*exec.Cmd) error
}

// wrap returns d changed to run the uploaded copy.
func (u *Upload) wrap(ctx context.Context, d spawn.Dialer, log *slog.Logger) (spawn.Dialer, error) {
	switch d := d.(type) {
	case *spawn.Native:
		remote := d.RemoteCommand
		if d.Subsystem != "" {
			return nil, errors.New("--upload runs the copy as the remote command: leave --subsystem out")
		}
		d.Prepare = func(ctx context.Context, run spawn.Runner) (string, error) {
			return u.to(ctx, upload.Runner(run), remote, log)
		}
		return d, nil
	case spawn.Options:
		probe := d
		probe.RemoteCommand = ""
		argv, err := probe.Args()
		if err != nil {
			return nil, err
		}
		argv = argv[:len(argv)-1] // the empty remote command: the Runner adds its own
		if d.RemoteCommand, err = u.to(ctx, upload.ExecRunnerWith(argv, u.Prepare), d.RemoteCommand, log); err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, errors.New("--upload needs sshvpn on the server's side of the connection: not with --openssh-tun")
}

// to makes sure the server has this sshvpn, through run, and returns remote
// with the word that names sshvpn replaced by the copy's path, behind a
// check, made before each run, that the copy is still the one uploaded.
func (u *Upload) to(ctx context.Context, run upload.Runner, remote string, log *slog.Logger) (string, error) {
	words, err := spawn.SplitCommand(remote)
	if err != nil || len(words) == 0 {
		return "", fmt.Errorf("--remote-cmd %q: %v", remote, err)
	}
	// The word that names sshvpn, which the copy replaces: the first
	// one, or the one after sudo and its kind.
	at := slices.IndexFunc(words, func(w string) bool { return strings.Contains(filepath.Base(w), "sshvpn") })
	if at < 0 {
		return "", fmt.Errorf("--upload runs the copy in place of the sshvpn that --remote-cmd names, and %q names none", remote)
	}
	res, err := upload.Ensure(ctx, run, upload.Options{
		Binary: u.Binary, Version: u.Version, Logf: func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) }})
	if err != nil {
		return "", err
	}
	if res.Copied {
		log.Info("copied sshvpn to the server", "path", res.Path)
	} else {
		log.Debug("the server has this sshvpn already", "path", res.Path)
	}
	if res.Note != "" {
		log.Warn(res.Note)
	}
	words[at] = res.Path
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = spawn.QuoteWord(w)
	}
	return res.Verified(strings.Join(quoted, " ")), nil
}
