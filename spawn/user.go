package spawn

import (
	"os"
	"os/user"
)

// localUser is this process's user's name.
func localUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// User is an account to run ssh as, and whose configuration, keys and
// known_hosts to use: under sudo, the invoking user rather than root.
type User struct {
	Name     string
	UID, GID uint32
	Groups   []uint32
	Home     string
}

// homeOf is as's home directory, or this process's.
func homeOf(as *User) string {
	if as != nil {
		return as.Home
	}
	home, _ := os.UserHomeDir()
	return home
}

// userOf is as's name, or this process's user's.
func userOf(as *User) string {
	if as != nil {
		return as.Name
	}
	return localUser()
}
