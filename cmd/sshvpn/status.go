package main

import (
	"encoding/json"
	"os"
	"slices"
	"time"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
)

// statusCmd lists the tunnels running on this machine, both sides.
type statusCmd struct {
	JSON bool `name:"json" help:"Print the sessions as a JSON array, for scripts: the registry records as they are (see README, Status)."`
	All  bool `help:"List the tunnels of every network namespace, not only this one's."`
}

func (c *statusCmd) Run() error {
	all, err := record.All()
	if err != nil {
		return err
	}
	here, recs := proc.NetNS(), all
	if !c.All {
		recs = slices.DeleteFunc(slices.Clone(all), func(r registry.Record) bool { return r.NetNS != here })
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if recs == nil {
			recs = []registry.Record{}
		}
		return enc.Encode(recs)
	}
	record.Show(os.Stdout, recs, time.Now(), here, len(all)-len(recs))
	return nil
}
