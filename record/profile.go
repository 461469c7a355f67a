package record

import (
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn/registry"
)

// ProfileRunning is the pid of the running client of profile name
// ("sshvpn up NAME"), or 0.
func ProfileRunning(name string) int {
	recs, _ := All()
	for _, r := range recs {
		if r.Side == registry.SideClient && r.Profile == name && r.Holder().Alive() {
			return r.PID
		}
	}
	return 0
}

// EndProfile ends the clients of profile name (SIGTERM) and waits up to
// timeout until they have cleaned up and gone.
func EndProfile(name string, timeout time.Duration) error {
	recs, err := All()
	if err != nil {
		return err
	}
	var mine []registry.Record
	for _, r := range recs {
		if r.Side == registry.SideClient && r.Profile == name {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return fmt.Errorf("no tunnel of profile %s is running (sshvpn status lists them)", name)
	}
	for _, r := range mine {
		if err := syscall.Kill(r.PID, syscall.SIGTERM); err != nil {
			return fmt.Errorf("ending pid %d: %w", r.PID, err)
		}
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !slices.ContainsFunc(mine, func(r registry.Record) bool { return r.Holder().Alive() }) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the tunnel of profile %s did not end within %v", name, timeout)
}
