package e2e

import (
	"testing"
)

// TestNativeSmoke: --native with the lab's key file brings the tunnel up.
func TestNativeSmoke(t *testing.T) {
	l := newLab(t)
	v := l.up(append(tunnelArgs, "--native", "-F", l.SSHConfig, "root@server")...)
	if err := l.ping(l.Client, serverV4); err != nil {
		t.Error(err)
	}
	if err := l.ping(l.Client, serverV6); err != nil {
		t.Error(err)
	}
	if err, log := v.stop(t); err != nil {
		t.Errorf("exit %v:\n%s", err, log)
	}
}
