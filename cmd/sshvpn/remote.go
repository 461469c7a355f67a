package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
)

type remoteCmd struct {
	tunnelFlags
	Keepalive time.Duration `default:"10s" help:"Interval between keepalive pings."`
	DeadAfter time.Duration `default:"45s" help:"Give up on a client silent this long."`
}

func (r *remoteCmd) Run(ctx context.Context, log *slog.Logger) error {
	addrs, peers, err := r.prefixes()
	if err != nil {
		return err
	}
	conn, err := spawn.Stdio()
	if err != nil {
		return err
	}
	err = sshvpn.Serve(ctx, conn, sshvpn.ServerConfig{
		Mode: tun.ModeTUN, MTU: r.MTU, Addrs: addrs, PeerAddrs: peers,
		Open: func(t sshvpn.Tunnel) (tun.Device, error) {
			dev, err := tun.Open(tun.Config{Name: r.Dev, Mode: t.Mode})
			if err != nil {
				return nil, err
			}
			if err := tun.Configure(dev.Name(), tun.Setup{MTU: t.MTU, Addrs: t.Addrs}); err != nil {
				dev.Close()
				return nil, err
			}
			return dev, nil
		},
		Keepalive: r.Keepalive, DeadAfter: r.DeadAfter, Logger: log,
	})
	if errors.Is(err, io.EOF) {
		log.Info("the client went away")
		return nil
	}
	return err
}
