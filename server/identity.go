package server

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/sshvpn/sshvpn/internal/text"
	"golang.org/x/crypto/ssh"
)

// Identity is who a remote session serves, as sshd tells it: for the
// admin's log and for counting a key's sessions.
type Identity struct {
	User   string // the account
	Client string // the SSH client's address and port, from SSH_CONNECTION
	Key    string // the key's SHA256 fingerprint, when sshd exposes it (ExposeAuthInfo)
	ID     string // what sessions are counted by: the key, else the account and command line
}

// IdentityFromEnv reads the session's identity from sshd's environment
// (SSH_CONNECTION, SSH_USER_AUTH) and the command line args of the forced
// command. It is used for logging and counting only, never as policy: the
// policy is the command line.
func IdentityFromEnv(args []string) Identity {
	var id Identity
	if u, err := user.Current(); err == nil {
		id.User = u.Username
	} else {
		id.User = "uid " + strconv.Itoa(os.Getuid())
	}
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) >= 2 {
		id.Client = text.Clean(f[0], false) + " port " + text.Clean(f[1], false)
	}
	id.Key = authKey(os.Getenv("SSH_USER_AUTH"))
	if id.Key != "" {
		id.ID = id.Key
	} else {
		// Without ExposeAuthInfo, a key is known by its forced command:
		// keys with the same command line in one account share a count.
		sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
		id.ID = "uid " + strconv.Itoa(os.Getuid()) + " command " + hex.EncodeToString(sum[:8])
	}
	return id
}

// Attrs are the identity as log attributes.
func (id Identity) Attrs() []any {
	a := []any{"user", id.User}
	if id.Client != "" {
		a = append(a, "client", id.Client)
	}
	if id.Key != "" {
		a = append(a, "key", id.Key)
	}
	return a
}

// authKey returns the fingerprint of the public key sshd accepted, from the
// file its ExposeAuthInfo names in SSH_USER_AUTH ("publickey TYPE BASE64"
// lines, the last being the method that completed), or "".
func authKey(file string) string {
	if file == "" {
		return ""
	}
	// O_NONBLOCK: a FIFO named here must not hang the session.
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	var fp string
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		method, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok || method != "publickey" {
			continue
		}
		if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest)); err == nil {
			fp = ssh.FingerprintSHA256(key)
		}
	}
	return fp
}
