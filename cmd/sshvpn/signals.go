package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// signals are the signals a run acts on besides the ones that stop it,
// each on a channel of its own (nil where it does not apply).
type signals struct {
	hangup   <-chan os.Signal // SIGHUP on the client: reconnect at once
	counters <-chan os.Signal // SIGUSR1: log the counters
	ended    <-chan os.Signal // SIGUSR2 on the server: a newer session took over
}

// watch is the one place sshvpn takes signals. The context ends at the
// first SIGINT, SIGTERM or SIGQUIT (SIGQUIT too: its default, a goroutine
// dump and exit, would skip the cleanup and leave routes behind), and on
// the server at SIGHUP too. After that a second SIGINT has its default
// effect, as people expect of a second Ctrl-C: exit at once, without
// cleaning up; the others are taken and ignored, so that a second
// "sshvpn down" or systemd's SIGTERM does not cut the cleanup short. A write to a closed stdout (the remote's transport, once
// sshd has gone) must be an EPIPE error that ends the session through its
// cleanup (leases, routes, down hooks), not a SIGPIPE that kills the
// process; Notify, unlike Ignore, leaves children's SIGPIPE alone.
func watch(remote bool) (context.Context, signals, func()) {
	stops := []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT}
	if remote {
		stops = append(stops, syscall.SIGHUP)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), stops...)
	absorb := make(chan os.Signal, 1) // never read: what it takes is ignored
	again := context.AfterFunc(ctx, func() {
		signal.Notify(absorb, stops[1:]...) // before cancel lets them go
		cancel()
	})
	hup, usr1, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1), make(chan os.Signal, 1)
	sig := signals{counters: usr1}
	signal.Notify(usr1, syscall.SIGUSR1)
	if remote {
		signal.Notify(usr2, syscall.SIGUSR2)
		sig.ended = usr2
	} else {
		signal.Notify(hup, syscall.SIGHUP)
		sig.hangup = hup
	}
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	return ctx, sig, func() {
		again()
		cancel()
		signal.Stop(hup)
		signal.Stop(usr1)
		signal.Stop(usr2)
		signal.Stop(pipe)
		signal.Stop(absorb)
	}
}
