package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sshvpn/sshvpn"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const description = `sshvpn carries IP packets over SSH, between a tun device on this machine and one on the server.

"sshvpn user@host" runs "ssh -T user@host sshvpn --remote", so the server needs sshvpn installed but no
PermitTunnel, no extra daemon and no open port. Both ends need the right to create a tun device (root, or
CAP_NET_ADMIN). Without address flags the tunnel gets 198.18.0.1/30 and fd73:7368:7670::1/64 here and
198.18.0.2/30 and fd73:7368:7670::2/64 on the server; the server's own flags, if any, win.

Examples:
  sshvpn admin@gw.example.net
  sshvpn -e "ssh -p 2222 -i ~/.ssh/vpn" --addr 192.0.2.1/30 --peer-addr 192.0.2.2/30 gw
  sshvpn --remote-cmd "sudo /usr/local/bin/sshvpn --remote" gw
  sshvpn --route 198.51.100.0/24 --up ./dns-up.sh --down ./dns-down.sh gw

"sshvpn connect --help" lists the client's flags (routes, default route, hooks, tap mode);
"sshvpn remote --help" the server's policy flags; README.md has walkthroughs.`

// CLI is the command line.
type CLI struct {
	Verbose bool             `short:"v" help:"Show details: the ssh command, the handshake, frames dropped, traffic counters."`
	Quiet   bool             `short:"q" help:"Show only errors."`
	Version kong.VersionFlag `help:"Print the version and exit."`

	Connect connectCmd `cmd:"" default:"withargs" help:"Connect to DESTINATION and bring the tunnel up (the default command)."`
	Remote  remoteCmd  `cmd:"" help:"Serve one tunnel over stdin/stdout; sshd runs this as \"sshvpn --remote\". Its flags are the server's policy."`

	AuthorizedKey authorizedKeyCmd `cmd:"" name:"authorized-key" help:"Print an authorized_keys line that lets a key run only \"sshvpn --remote\" with the given policy."`
}

// run parses args, runs the command and returns the exit status.
func run(args []string) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("sshvpn"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.Vars{"version": "sshvpn " + versionString()},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshvpn:", err)
		return 2
	}
	kctx, err := parser.Parse(remoteFlag(args))
	if err != nil {
		parser.FatalIfErrorf(err)
	}
	sshvpn.Software = "sshvpn " + versionString()
	var log *slog.Logger
	if kctx.Command() == "remote" {
		// The server's admin reads the system log; the client reads
		// stderr, through sshd.
		id := remoteIdentity(args)
		log = newRemoteLogger(os.Stderr, openSyslog(), cli.Verbose, cli.Quiet, id.attrs())
		kctx.Bind(id)
	} else {
		log = newLogger(os.Stderr, cli.Verbose, cli.Quiet, false)
	}
	// SIGQUIT too: its default (a goroutine dump and exit) would skip the
	// cleanup and leave routes behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	// A write to a closed stdout (the remote's transport, once sshd has
	// gone) must be an EPIPE error that ends the session through its
	// cleanup (leases, routes, down hooks), not a SIGPIPE that kills the
	// process. Notify, unlike Ignore, leaves children's SIGPIPE alone.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(log); err != nil {
		var s silentError
		if !errors.As(err, &s) {
			fmt.Fprintln(os.Stderr, "sshvpn:", sanitize(strings.TrimPrefix(err.Error(), "sshvpn: ")))
		}
		return 1
	}
	return 0
}

// silentError is an error that has been reported already (the remote side
// told the client in an Error frame, and its admin in the system log): run
// exits non-zero without printing it again.
type silentError struct{ error }

func (e silentError) Unwrap() error { return e.error }

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

// tunnelFlags are the flags both sides share.
type tunnelFlags struct {
	Dev      string   `placeholder:"NAME" help:"Device name (default: the kernel picks tunN)."`
	Addr     []string `placeholder:"CIDR" help:"This side's tunnel address with prefix length, IPv4 or IPv6; repeat for both."`
	PeerAddr []string `placeholder:"CIDR" help:"The other side's tunnel address; repeat for both families."`
	MTU      int      `name:"mtu" help:"Tunnel MTU (default 1500; the server's --mtu wins)."`
}

func parsePrefixes(flag string, ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		for f := range strings.SplitSeq(s, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("--%s %q: want an address with prefix length, such as 198.18.0.1/30 or fd00::1/64", flag, f)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *tunnelFlags) prefixes() (addrs, peers []netip.Prefix, err error) {
	if addrs, err = parsePrefixes("addr", f.Addr); err != nil {
		return nil, nil, err
	}
	if peers, err = parsePrefixes("peer-addr", f.PeerAddr); err != nil {
		return nil, nil, err
	}
	if err := checkMTUFlag(f.MTU); err != nil {
		return nil, nil, err
	}
	return addrs, peers, nil
}

// checkMTUFlag checks --mtu, 0 meaning unset, against the range the
// handshake accepts.
func checkMTUFlag(mtu int) error {
	if mtu == 0 {
		return nil
	}
	if err := sshvpn.CheckMTU(mtu); err != nil {
		return fmt.Errorf("--mtu: %w", err)
	}
	return nil
}

// checkKeepalive refuses a dead-peer limit that keepalives cannot meet.
func checkKeepalive(keepalive, deadAfter time.Duration) error {
	if deadAfter <= keepalive {
		return fmt.Errorf("--dead-after %v must be longer than --keepalive %v, or every pause between pings looks like a dead peer", deadAfter, keepalive)
	}
	return nil
}
