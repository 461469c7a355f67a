package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn"
)

// TestSplitHandler: records marked for the admin, and loggers made for the
// admin, never reach the client's stream; the identity never does either;
// the admin's handler gets everything.
func TestSplitHandler(t *testing.T) {
	var client, admin bytes.Buffer
	h := &splitHandler{client: textHandler(&client, 0), admin: textHandler(&admin, 0)}
	log := slog.New(h).With("user", "alice")
	log.Info("tunnel up", "dev", "tun0")
	log.Warn("dropping packets", "src", "198.18.5.5", sshvpn.AdminOnly)
	log.With(sshvpn.AdminOnly).Info("hook output", "line", "secret")
	c, a := client.String(), admin.String()
	if !strings.Contains(c, "tunnel up") || strings.Contains(c, "dropping") || strings.Contains(c, "hook output") {
		t.Errorf("client's stream:\n%s", c)
	}
	for _, want := range []string{"tunnel up", "dropping packets", "hook output", "user=alice"} {
		if !strings.Contains(a, want) {
			t.Errorf("admin's stream lacks %q:\n%s", want, a)
		}
	}
	if strings.Contains(a, sshvpn.AdminOnlyKey) || strings.Contains(c, sshvpn.AdminOnlyKey) {
		t.Errorf("the marker is printed:\n%s\n%s", c, a)
	}
}

func TestAuthKey(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/auth"
	writeFile(t, file, "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4oYOgAUmkh524PratjCmXWexsre3w6pSTFSul1UN68\n")
	if got := authKey(file); !strings.HasPrefix(got, "SHA256:") {
		t.Errorf("authKey = %q, want a SHA256 fingerprint", got)
	}
	if got := authKey(dir); got != "" {
		t.Errorf("authKey(a directory) = %q, want nothing", got)
	}
	if got := authKey(dir + "/missing"); got != "" {
		t.Errorf("authKey(a missing file) = %q, want nothing", got)
	}
}
