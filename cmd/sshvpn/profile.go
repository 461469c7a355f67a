package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/alecthomas/kong"

	"github.com/sshvpn/sshvpn/daemon"
	"github.com/sshvpn/sshvpn/internal/statedir"
	"github.com/sshvpn/sshvpn/record"
)

// A profile is a tunnel written down: the flags of "sshvpn connect" as
// TOML keys (their long names: addr = ["198.18.0.1/30"], default-route =
// true, ssh-cmd = "ssh -p 2222"), and destination = "user@host". It serves
// as a kong Resolver: what the command line does not give comes from the
// profile.
type profile struct {
	name   string
	path   string
	values map[string]any
	syslog bool // the run logs to the system log too (up in the background)
}

// profileDirs are where "sshvpn up NAME" looks for NAME.conf, in order:
// the account's own, then the system's. A profile can run hooks and name
// keys, so root (sudo included) reads only root's and the system's: a
// user's profile must not run anything as root.
func profileDirs() []string {
	var dirs []string
	if home := ownHome(); home != "" {
		dirs = append(dirs, filepath.Join(home, ".config", "sshvpn"))
	}
	return append(dirs, systemProfiles)
}

// systemProfiles is the system's profile directory.
var systemProfiles = "/etc/sshvpn"

// ownHome is the home directory of the account sshvpn runs as: $HOME, but
// under sudo root's from the password database (sudo may keep the user's
// HOME).
func ownHome() string {
	if os.Geteuid() == 0 && os.Getenv("SUDO_UID") != "" {
		if u, err := user.Current(); err == nil {
			return u.HomeDir
		}
		return ""
	}
	home, _ := os.UserHomeDir()
	return home
}

// checkProfileName refuses names that could reach outside the profile
// directories.
func checkProfileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, "-") {
		return fmt.Errorf("profile name %q: use letters, digits, '-', '_' or '.', without '/'", name)
	}
	return nil
}

// loadProfile finds and reads profile name: in the account's own
// directory or the system's (from "user" or "system"), or, with from
// empty, in whichever has it; a name both have is ambiguous, and refused.
func loadProfile(name, from string) (*profile, error) {
	if err := checkProfileName(name); err != nil {
		return nil, err
	}
	dirs := profileDirs()
	switch {
	case from == "system":
		dirs = dirs[len(dirs)-1:]
	case from == "user" && len(dirs) > 1:
		dirs = dirs[:1]
	case from == "user":
		return nil, errors.New("--user: this account has no home directory for profiles")
	}
	var tried, found []string
	for _, d := range dirs {
		path := filepath.Join(d, name+".conf")
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			tried = append(tried, path)
			continue
		}
		found = append(found, path)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no profile %q: none of %s exists (see README, Profiles)", name, strings.Join(tried, ", "))
	case 2:
		return nil, fmt.Errorf("profile %s is both %s and %s: say which, with sshvpn up --user %s or sshvpn up --system %s", name, found[0], found[1], name, name)
	}
	b, err := readProfile(found[0])
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	p := &profile{name: name, path: found[0], values: map[string]any{}}
	if _, err := toml.Decode(string(b), &p.values); err != nil {
		return nil, fmt.Errorf("profile %s: %w", found[0], err)
	}
	return p, nil
}

// readProfile reads a profile file, refusing one that another account could
// have written: a profile runs hooks and names keys as whoever runs
// sshvpn. As OpenSSH does for its configuration files, the file and its
// directory must be owned by root or by the account running sshvpn, and
// writable by no one else.
func readProfile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if err := safeOwner(path, fi); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if err := safeOwner(dir, di); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// safeOwner refuses a file or directory that is not root's or the running
// account's, or that its group or others can write.
func safeOwner(path string, fi fs.FileInfo) error {
	euid := os.Geteuid()
	owner := statedir.Owner(fi)
	what := "chown " + strconv.Itoa(euid)
	if euid == 0 {
		what = "chown root"
	}
	switch {
	case owner != 0 && owner != euid:
		return fmt.Errorf("bad owner or permissions on %s: owned by uid %d, not by root or uid %d, which runs sshvpn (%s %s, or copy it to a profile directory of your own)",
			path, owner, euid, what, path)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("bad owner or permissions on %s: mode %04o lets others change it (chmod go-w %s)", path, fi.Mode().Perm(), path)
	}
	return nil
}

// key finds a flag's value: by its long name, or with '_' for '-'.
func (p *profile) key(name string) (any, bool) {
	if v, ok := p.values[name]; ok {
		return v, true
	}
	v, ok := p.values[strings.ReplaceAll(name, "-", "_")]
	return v, ok
}

// Validate refuses keys that are not flags of sshvpn connect (a typo would
// otherwise be ignored) and values of the wrong shape.
func (p *profile) Validate(app *kong.Application) error {
	known := map[string]bool{"destination": true}
	for _, c := range app.Children {
		if c.Name != "connect" {
			continue
		}
		for _, f := range c.AllFlags(false) {
			for _, fl := range f {
				known[fl.Name], known[strings.ReplaceAll(fl.Name, "-", "_")] = true, true
			}
		}
	}
	for _, f := range app.Flags {
		known[f.Name] = true
	}
	for k := range p.values {
		if !known[k] {
			return fmt.Errorf("profile %s: %q is not a flag of sshvpn connect", p.path, k)
		}
	}
	return nil
}

// Resolve gives a flag its value from the profile.
func (p *profile) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	v, ok := p.key(flag.Name)
	if !ok {
		return nil, nil
	}
	switch x := v.(type) {
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = fmt.Sprint(e)
		}
		return strings.Join(out, ","), nil
	case int64, float64, bool, string:
		return fmt.Sprint(x), nil
	}
	return nil, fmt.Errorf("profile %s: %s: a value kong cannot take (%T)", p.path, flag.Name, v)
}

// upCmd is "sshvpn up NAME [flags]".
type upCmd struct {
	Foreground bool     `help:"Stay in the foreground until the tunnel ends, logging to stderr (the systemd unit, scripts); by default up returns once the tunnel is up and the tunnel goes on in the background, logging to the system log."`
	Child      bool     `name:"daemon-child" hidden:"" help:"(up's background process)"`
	User       bool     `xor:"from" help:"Read NAME from ~/.config/sshvpn only (a name both directories have needs --user or --system)."`
	System     bool     `xor:"from" help:"Read NAME from /etc/sshvpn only."`
	Name       string   `arg:"" help:"The profile: NAME.conf in ~/.config/sshvpn or in /etc/sshvpn."`
	Args       []string `arg:"" optional:"" passthrough:"" help:"Flags of sshvpn connect, which override the profile's."`
}

// connect loads the profile and returns the command line of sshvpn
// connect that runs it, with the profile to resolve its flags.
func (u *upCmd) connect(verbose, quiet bool, format string) ([]string, *profile, error) {
	from := ""
	if u.User {
		from = "user"
	} else if u.System {
		from = "system"
	}
	prof, err := loadProfile(u.Name, from)
	if err != nil {
		return nil, nil, err
	}
	dest, _ := prof.key("destination")
	d, ok := dest.(string)
	if !ok || d == "" {
		return nil, nil, fmt.Errorf("profile %s: destination = \"user@host\" is missing", prof.path)
	}
	args := []string{"connect"}
	if verbose {
		args = append(args, "-v")
	}
	if quiet {
		args = append(args, "-q")
	}
	args = append(args, "--log-format", format)
	rest := u.Args
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:] // "sshvpn up NAME -- --mtu 1400"
	}
	args = append(append(args, rest...), "--", d)
	return args, prof, nil
}

// background runs "sshvpn ARGS" (up NAME ...) again as a process of its
// own and returns once its tunnel is up, or with its failure.
func (u *upCmd) background(args []string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshvpn:", err)
		return 1
	}
	i := slices.Index(args, "up")
	argv := slices.Concat([]string{exe}, args[:i+1], []string{"--daemon-child"}, args[i+1:])
	pid, status, err := daemon.Start(argv, nil, os.Stderr, 2*time.Minute)
	var exit *daemon.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.Status // it said why on stderr
	case err != nil:
		fmt.Fprintln(os.Stderr, "sshvpn:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "sshvpn: %s (pid %d, logging to the system log); sshvpn down %s ends it\n", status, pid, u.Name)
	return 0
}

// downCmd is "sshvpn down NAME".
type downCmd struct {
	Name    string        `arg:"" help:"The profile whose tunnel to end."`
	Timeout time.Duration `default:"20s" help:"How long to wait for it to clean up."`
}

func (c *downCmd) Run() error {
	if err := checkProfileName(c.Name); err != nil {
		return err
	}
	return record.EndProfile(c.Name, c.Timeout)
}
