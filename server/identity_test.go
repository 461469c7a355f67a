package server

import (
	"os"
	"strings"
	"testing"
)

// TestAuthKey: the key sshd names in SSH_USER_AUTH is the fingerprint of
// the last publickey line; anything but a regular file names none.
func TestAuthKey(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/auth"
	if err := os.WriteFile(file, []byte("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4oYOgAUmkh524PratjCmXWexsre3w6pSTFSul1UN68\n"), 0o600); err != nil {
		t.Fatal(err)
	}
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

// TestHookEnv: the server's hooks get the account's basics, never what the
// client could send (SSH_ORIGINAL_COMMAND, variables sshd accepts).
func TestHookEnv(t *testing.T) {
	t.Setenv("SSH_ORIGINAL_COMMAND", "sshvpn --remote --up /tmp/evil")
	t.Setenv("LC_EVIL", "1")
	t.Setenv("PATH", "/usr/bin:/bin")
	env := HookEnv()
	joined := strings.Join(env, "\n")
	if strings.Contains(joined, "SSH_ORIGINAL_COMMAND") || strings.Contains(joined, "LC_EVIL") {
		t.Errorf("the hooks' environment has what the client sent: %q", env)
	}
	if !strings.Contains(joined, "PATH=/usr/bin:/bin") {
		t.Errorf("the hooks' environment lacks PATH: %q", env)
	}
}
