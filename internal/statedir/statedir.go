// Package statedir checks the directories sshvpn keeps state in (session
// records, pool leases): others must not be able to plant files or links
// there.
package statedir

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Check refuses dir unless it is a real directory (not a symbolic link),
// owned by the effective user or root, writable by the effective user and
// by no one else. fix says what to do instead; it ends each message.
func Check(dir, fix string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("state directory %s is a symbolic link; %s", dir, fix)
	case !fi.IsDir():
		return fmt.Errorf("state directory %s is not a directory; %s", dir, fix)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("state directory %s: cannot read its owner", dir)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("state directory %s is owned by uid %d, not by uid %d or root; %s", dir, st.Uid, euid, fix)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("state directory %s is writable by others (mode %04o); %s", dir, perm, fix)
	}
	if int(st.Uid) != os.Geteuid() && unix.Access(dir, unix.W_OK) != nil {
		return fmt.Errorf("state directory %s is not writable by uid %d; %s", dir, os.Geteuid(), fix)
	}
	return nil
}

// CheckOther refuses dir, the state directory of account uid that root
// reads, unless it is a real directory that uid owns and no one else can
// write to: a directory of any other owner could have been made by anyone
// to plant records in it.
func CheckOther(dir string, uid int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0, !fi.IsDir():
		return fmt.Errorf("state directory %s is not a real directory", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("state directory %s is writable by others (mode %04o)", dir, fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("state directory %s: cannot read its owner", dir)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("state directory %s is owned by uid %d, not by uid %d whose it is", dir, st.Uid, uid)
	}
	return nil
}

// Owner is the uid that owns the file fi describes, or -1 where it
// cannot be read.
func Owner(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// Lock takes the exclusive lock of file name in dir (created if missing,
// never through a link, and refused unless a regular file), waiting for
// it; unlock releases it.
func Lock(dir, name string) (unlock func(), err error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock file %s is not a regular file", path)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
