package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sshvpn/sshvpn/client"
	"github.com/sshvpn/sshvpn/internal/clidoc"
	"github.com/sshvpn/sshvpn/logs"
	"github.com/sshvpn/sshvpn/metrics"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/server"
	"github.com/sshvpn/sshvpn/usage"
)

const description = `sshvpn carries IP packets over SSH, between a tun device on this machine and one on the server.

"sshvpn user@host" runs "ssh -T user@host sshvpn --remote", so the server needs sshvpn installed but no
PermitTunnel, no extra daemon and no open port. Both ends need the right to create a tun device (root, or
CAP_NET_ADMIN). Without address flags the tunnel gets 198.18.0.1/30 and fd73:7368:7670::1/64 here and
198.18.0.2/30 and fd73:7368:7670::2/64 on the server; the server's own flags, if any, win.

"sshvpn --native ..." speaks SSH itself (same config, agent, keys and known_hosts); "--native
--openssh-tun" needs no sshvpn on the server, only sshd's PermitTunnel.

Examples:
  sshvpn admin@gw.example.net
  sshvpn --reconnect --default-route admin@gw
  sshvpn --native --accept-new -F ./ssh_config gw
  sshvpn -e "ssh -p 2222 -i ~/.ssh/vpn" --addr 192.0.2.1/30 --peer-addr 192.0.2.2/30 gw
  sshvpn --remote-cmd "sudo /usr/local/bin/sshvpn --remote" gw
  sshvpn --route 198.51.100.0/24 --up ./dns-up.sh --down ./dns-down.sh gw
  sshvpn --default-route --dns 10.20.0.53 gw    # the server's forced command has --nat
  sshvpn up office; sshvpn status; sshvpn down office

Common flags (sshvpn connect --help lists them all): --addr/--peer-addr CIDR, --route CIDR, --default-route,
--dns ADDR, --reconnect, --streams N, -e "ssh ...", --native, -v/-q.

"sshvpn connect --help" lists the client's flags (routes, default route, hooks, tap mode);
"sshvpn remote --help" the server's policy flags; README.md has walkthroughs.`

// CLI is the command line.
type CLI struct {
	Verbose   bool             `short:"v" help:"Show details: the ssh command, the handshake, frames dropped, traffic counters."`
	Quiet     bool             `short:"q" help:"Show only errors."`
	LogFormat string           `name:"log-format" default:"text" enum:"text,logfmt,json" help:"How log lines look: text (short lines for a person; the server's start with \"server:\"), logfmt (key=value, with side=remote on the server's) or json."`
	Version   kong.VersionFlag `help:"Print the version and exit."`

	Connect connectCmd `cmd:"" default:"withargs" help:"Connect to DESTINATION and bring the tunnel up (the default command)."`
	Remote  remoteCmd  `cmd:"" help:"Serve one tunnel over stdin/stdout; sshd runs this as \"sshvpn --remote\". Its flags are the server's policy."`

	AuthorizedKey authorizedKeyCmd `cmd:"" name:"authorized-key" help:"Print an authorized_keys line that lets a key run only \"sshvpn --remote\" with the given policy."`
	Status        statusCmd        `cmd:"" help:"List the tunnels running in this network namespace (--all: in every one), client and server sides: addresses, state, RTT, traffic, drops."`
	Up            upCmd            `cmd:"" help:"Bring up the tunnel of a profile, ~/.config/sshvpn/NAME.conf or /etc/sshvpn/NAME.conf (under sudo, root's, never the invoking user's), and return once it is up; it goes on in the background (--foreground: stay). Flags after NAME override the profile; see README, Profiles."`
	Down          downCmd          `cmd:"" help:"End the tunnel that \"sshvpn up NAME\" started, and wait until it has cleaned up."`
	Metrics       metricsCmd       `cmd:"" help:"Print the sessions of this machine in the Prometheus text format, or serve them (--listen)."`
	Usage         usageCmd         `cmd:"" help:"Show a server's accounting: per key, the bytes each way, sessions, first and last seen, the quota period's bytes."`
	Completion    completionCmd    `cmd:"" help:"Print a completion script for bash, zsh or fish (scripts/install.sh installs them)."`
	Man           manCmd           `cmd:"" help:"Print the man page (roff): sshvpn man | man -l -"`
	// commandWords answers help and version; these list them with the others.
	Help        wordCmd `cmd:"" help:"Show this help, or a command's: sshvpn help connect."`
	VersionWord wordCmd `cmd:"" name:"version" help:"Print the version."`
}

// wordCmd is a command that commandWords turns into a flag before kong parses.
type wordCmd struct {
	Command []string `arg:"" optional:"" hidden:""`
}

func (wordCmd) Run() error { return nil }

// completionCmd and manCmd print what internal/clidoc makes of the
// command line itself.
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (c *completionCmd) Run(k *kong.Context) error {
	gen := map[string]func(io.Writer, *kong.Application) error{"bash": clidoc.Bash, "zsh": clidoc.Zsh, "fish": clidoc.Fish}[c.Shell]
	return gen(os.Stdout, k.Model)
}

// metricsCmd is "sshvpn metrics": see package metrics.
type metricsCmd struct {
	Listen         string `placeholder:"ADDR" help:"Serve the metrics at http://ADDR/metrics for a scrape (e.g. 127.0.0.1:9586) until stopped, instead of printing them once."`
	NoClientLabels bool   `help:"Leave out the labels that name a client (user, key, addresses): one series per device."`
}

func (c *metricsCmd) Run(ctx context.Context) error {
	reg := metrics.New(record.All, metrics.Options{NoClientLabels: c.NoClientLabels})
	if c.Listen != "" {
		return metrics.Serve(ctx, c.Listen, reg)
	}
	return metrics.Write(os.Stdout, reg)
}

// usageCmd is "sshvpn usage": see package usage.
type usageCmd struct {
	JSON     bool   `name:"json" help:"Print the totals as JSON."`
	StateDir string `default:"/run/sshvpn" placeholder:"DIR" help:"The --state-dir of the forced commands."`
}

func (c *usageCmd) Run() error {
	m, err := usage.Read(c.StateDir)
	if err != nil || c.JSON {
		return cmp.Or(err, json.NewEncoder(os.Stdout).Encode(usage.Sorted(m)))
	}
	return usage.Show(os.Stdout, usage.Sorted(m))
}

type manCmd struct{}

func (manCmd) Run(k *kong.Context) error {
	return clidoc.Man(os.Stdout, k.Model, "sshvpn "+versionString())
}

// commandWords turns "help [COMMAND]" into "[COMMAND] --help" and "version" into
// "--version", which would otherwise be taken for hosts to connect to.
func commandWords(args []string) []string {
	if len(args) == 0 {
		return args
	}
	switch args[0] {
	case "help":
		return append(slices.Clone(args[1:]), "--help")
	case "version":
		return []string{"--version"}
	}
	return args
}

// helpGroups are the headings of the flags that are not everyday ones.
var helpGroups = []kong.Group{{Key: "ssh", Title: "SSH transport:"}, {Key: "device", Title: "Device:"},
	{Key: "hooks", Title: "Hooks:"}, {Key: "keepalive", Title: "Keepalive:"}}

// runWith parses args, runs the command and returns the exit status;
// with a profile (sshvpn up NAME), its values are the defaults of the
// flags the command line does not give.
func runWith(args []string, prof *profile) int {
	var cli CLI
	opts := []kong.Option{
		kong.Name("sshvpn"),
		kong.Description(description),
		kong.Vars{"version": versionLine()},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.ExplicitGroups(helpGroups),
	}
	if prof != nil {
		opts = append(opts, kong.Resolvers(prof))
	}
	parser, err := kong.New(&cli, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshvpn:", err)
		return 2
	}
	kctx, err := parser.Parse(commandWords(remoteFlag(args)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshvpn:", err)
		if hint := flagHint(err); hint != "" {
			fmt.Fprintln(os.Stderr, hint)
		} else if hint := argHint(args, err, parser.Model.Children); hint != "" {
			fmt.Fprintln(os.Stderr, hint)
		}
		fmt.Fprintln(os.Stderr, `Run "sshvpn --help" for usage.`)
		return 2
	}
	if kctx.Command() == "connect <destination>" && prof == nil && !slices.Contains(args, "connect") {
		if err := mistyped(cli.Connect.Destination, parser.Model.Children, knownHost(cli.Connect.SSHConfig)); err != nil {
			fmt.Fprintln(os.Stderr, "sshvpn:", err)
			return 2
		}
	}
	if strings.HasPrefix(kctx.Command(), "up ") {
		upArgs, prof, err := cli.Up.connect(cli.Verbose, cli.Quiet, cli.LogFormat)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sshvpn:", err)
			return 2
		}
		if pid := record.ProfileRunning(cli.Up.Name); pid > 0 && !cli.Up.Child {
			fmt.Fprintf(os.Stderr, "sshvpn: profile %s is up already (pid %d); sshvpn down %s ends it\n", cli.Up.Name, pid, cli.Up.Name)
			return 1
		}
		if !cli.Up.Foreground && !cli.Up.Child {
			return cli.Up.background(args)
		}
		prof.syslog = cli.Up.Child
		return runWith(upArgs, prof)
	}
	if prof != nil {
		cli.Connect.profile, cli.Connect.profileFile = prof.name, prof.path
	}
	var log *slog.Logger
	if kctx.Command() == "remote" {
		// The server's admin reads the system log; the client reads
		// stderr, through sshd.
		id := server.IdentityFromEnv(args)
		clientLevel := logs.Level(cli.Verbose, cli.Quiet)
		if !cli.Verbose && !cli.Quiet {
			clientLevel = logs.Level(logs.ClientAsks(os.Getenv("SSH_ORIGINAL_COMMAND")))
		}
		log = logs.NewRemote(os.Stderr, logs.OpenSyslog(), cli.Verbose, clientLevel, id.Attrs())
		kctx.Bind(id)
	} else {
		var w io.Writer = os.Stderr
		if sys := logs.OpenSyslog(); prof != nil && prof.syslog && sys != nil {
			w = io.MultiWriter(sys, os.Stderr) // the journal first: stderr goes once up returns
		}
		log = logs.New(w, cli.Verbose, cli.Quiet, cli.LogFormat)
		if prof != nil {
			log.Debug("profile read", "name", prof.name, "file", prof.path)
		}
	}
	ctx, sig, stop := watch(kctx.Command() == "remote")
	defer stop()
	kctx.Bind(sig)
	kctx.Bind(verbosity{verbose: cli.Verbose, quiet: cli.Quiet})
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(log); err != nil {
		if errors.Is(err, client.ErrInterrupted) {
			fmt.Fprintln(os.Stderr, "sshvpn: interrupted before the tunnel came up")
			return 130
		}
		// Ctrl-C in a terminal reaches ssh too, which may die (and end
		// the connection) before sshvpn has taken its own signal: an
		// error that comes with a request to stop is that stop.
		if kctx.Command() != "remote" {
			select {
			case <-ctx.Done():
				if client.BeforeUp(err) {
					fmt.Fprintln(os.Stderr, "sshvpn: interrupted before the tunnel came up")
					return 130
				}
				return 0
			case <-time.After(stopGrace):
			}
		}
		var s silentError
		if !errors.As(err, &s) {
			fmt.Fprintln(os.Stderr, "sshvpn:", sanitize(err.Error()))
		}
		return 1
	}
	return 0
}

// stopGrace is how long a failed client waits for a signal that may have
// caused the failure.
const stopGrace = 300 * time.Millisecond

// remoteFlag turns "sshvpn [flags] --remote [flags]", the form sshd and
// authorized_keys lines use, into the "remote" command.
func remoteFlag(args []string) []string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--remote" {
			return append([]string{"remote"}, slices.Delete(slices.Clone(args), i, i+1)...)
		}
	}
	return args
}
