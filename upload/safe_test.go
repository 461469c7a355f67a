package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sshvpn/sshvpn/spawn"
)

// otherUID is the account that plants things for the server's account to
// trip on: nobody.
const otherUID = 65534

// loginShells are the shells to try as the server's login shell: sh, and
// those of bash, dash, zsh, ksh, mksh and busybox that are installed.
func loginShells() []string {
	shells := []string{"sh"}
	for _, sh := range []string{"bash", "dash", "zsh", "ksh", "mksh", "busybox"} {
		if _, err := exec.LookPath(sh); err == nil {
			shells = append(shells, sh)
		}
	}
	return shells
}

// argv is the command line that runs a command on the server with login
// shell sh (a name from loginShells); the command comes last.
func (s *server) argv(t *testing.T, sh string) []string {
	t.Helper()
	argv := []string{"env", "HOME=" + s.home, "PATH=" + s.bin + ":" + s.path, lookPath(t, sh), "-c"}
	if sh == "busybox" {
		argv = append(argv[:4], "sh", "-c")
	}
	return argv
}

// runCmd runs cmd on the server with login shell sh and returns its
// standard output, all of its standard error and its error.
func (s *server) runCmd(t *testing.T, sh, cmd string) (stdout, stderr string, err error) {
	t.Helper()
	argv := append(s.argv(t, sh), cmd)
	c := exec.Command(argv[0], argv[1:]...)
	var o, e strings.Builder
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return o.String(), e.String(), err
}

// countingRunner counts the commands run, and with stdin (uploads).
func countingRunner(inner Runner, calls, uploads *atomic.Int32) Runner {
	return func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
		calls.Add(1)
		if stdin != nil {
			uploads.Add(1)
		}
		return inner(ctx, cmd, stdin)
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// sshvpnFiles lists what looks like a copy of sshvpn, or a temporary one,
// under the directories dirs.
func sshvpnFiles(dirs ...string) []string {
	var found []string
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && strings.Contains(e.Name(), "sshvpn-") {
				found = append(found, p)
			}
			return nil
		})
	}
	return found
}

// TestEnsureRefusesUnsafeDirs: a directory for the copy that another
// account could change things in (a symbolic link to its directory, one it
// owns, one it may write to, or one below such) is refused with what to do,
// before anything is copied; unusual but safe setups are accepted.
func TestEnsureRefusesUnsafeDirs(t *testing.T) {
	root := os.Geteuid() == 0
	uid := os.Geteuid()
	for _, tc := range []struct {
		name     string
		needRoot bool // to chown to another account
		// plant sets up the server's home; evil is a directory of mode
		// 0777 outside it, owned by otherUID when root runs the test.
		plant func(t *testing.T, home, evil string)
		// want is the error, or "" for none.
		want func(home, evil string) string
	}{
		{"symbolic link to another account's 0777 directory", false,
			func(t *testing.T, home, evil string) {
				mkdir(t, filepath.Join(home, ".cache"), 0o700)
				if err := os.Symlink(evil, filepath.Join(home, ".cache/sshvpn")); err != nil {
					t.Fatal(err)
				}
			},
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is a symbolic link, which sshvpn does not follow for its copy: remove the link (sshvpn then creates the directory, mode 0700)"
			}},
		{"another account's directory", true,
			func(t *testing.T, home, evil string) {
				mkdir(t, filepath.Join(home, ".cache/sshvpn"), 0o755)
				chown(t, filepath.Join(home, ".cache/sshvpn"), otherUID)
			},
			func(home, evil string) string {
				return fmt.Sprintf("upload: the directory %s/.cache/sshvpn on the server belongs to uid %d, not to uid %d that sshvpn logs in as: remove it, as root if need be (sshvpn then creates it, mode 0700)", home, otherUID, uid)
			}},
		{"writable by all", false,
			func(t *testing.T, home, evil string) { mkdir(t, filepath.Join(home, ".cache/sshvpn"), 0o777) },
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is writable by others than its owner (drwxrwxrwx): remove it, with whatever others may have put in it (sshvpn then creates it, mode 0700)"
			}},
		{"writable by its group", false,
			func(t *testing.T, home, evil string) { mkdir(t, filepath.Join(home, ".cache/sshvpn"), 0o770) },
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is writable by others than its owner (drwxrwx---): remove it, with whatever others may have put in it (sshvpn then creates it, mode 0700)"
			}},
		{"sticky and writable by all", false,
			func(t *testing.T, home, evil string) {
				mkdir(t, filepath.Join(home, ".cache/sshvpn"), 0o777|os.ModeSticky)
			},
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is writable by others than its owner (drwxrwxrwt): remove it, with whatever others may have put in it (sshvpn then creates it, mode 0700)"
			}},
		{"a file", false,
			func(t *testing.T, home, evil string) {
				mkdir(t, filepath.Join(home, ".cache"), 0o700)
				if err := os.WriteFile(filepath.Join(home, ".cache/sshvpn"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is not a directory: remove it or move it away"
			}},
		{"missing, in a directory writable by all", false,
			func(t *testing.T, home, evil string) { mkdir(t, filepath.Join(home, ".cache"), 0o777) },
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is in " + home + "/.cache, which others than its owner can write to (drwxrwxrwx): chmod go-w " + home + "/.cache"
			}},
		{"in another account's directory", true,
			func(t *testing.T, home, evil string) {
				mkdir(t, filepath.Join(home, ".cache/sshvpn"), 0o700)
				chown(t, filepath.Join(home, ".cache"), otherUID)
			},
			func(home, evil string) string {
				return fmt.Sprintf("upload: the directory %[1]s/.cache/sshvpn on the server is in %[1]s/.cache, which belongs to uid %d, neither to uid %d that sshvpn logs in as nor to root: fix the owner of %[1]s/.cache, or have root remove it", home, otherUID, uid)
			}},
		{"in a home writable by its group", false,
			func(t *testing.T, home, evil string) { mkdir(t, home, 0o770) },
			func(home, evil string) string {
				return "upload: the directory " + home + "/.cache/sshvpn on the server is in " + home + ", which others than its owner can write to (drwxrwx---): chmod go-w " + home
			}},
		{"below a symbolic link to another account's 0777 directory", false,
			func(t *testing.T, home, evil string) {
				if err := os.Symlink(evil, filepath.Join(home, ".cache")); err != nil {
					t.Fatal(err)
				}
			},
			func(home, evil string) string {
				if root {
					return fmt.Sprintf("upload: the directory %s/.cache/sshvpn on the server is in %[2]s, which belongs to uid %d, neither to uid %d that sshvpn logs in as nor to root: fix the owner of %[2]s, or have root remove it", home, evil, otherUID, uid)
				}
				return "upload: the directory " + home + "/.cache/sshvpn on the server is in " + evil + ", which others than its owner can write to (drwxrwxrwx): chmod go-w " + evil
			}},

		// Safe, if unusual.
		{"below a symbolic link to a directory of the account's own", false,
			func(t *testing.T, home, evil string) {
				own := filepath.Join(filepath.Dir(evil), "own-cache")
				mkdir(t, own, 0o755)
				if err := os.Symlink(own, filepath.Join(home, ".cache")); err != nil {
					t.Fatal(err)
				}
			}, nil},
		{"in a sticky directory writable by all, as tmp is", false,
			func(t *testing.T, home, evil string) { mkdir(t, filepath.Join(home, ".cache"), 0o777|os.ModeSticky) }, nil},
		{"existing, mode 0755", false,
			func(t *testing.T, home, evil string) { mkdir(t, filepath.Join(home, ".cache/sshvpn"), 0o755) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sh := range loginShells() {
				t.Run(sh, func(t *testing.T) { testUnsafeDir(t, sh, tc.needRoot, tc.plant, tc.want) })
			}
		})
	}
}

func testUnsafeDir(t *testing.T, sh string, needRoot bool, plant func(t *testing.T, home, evil string), want func(home, evil string) string) {
	root := os.Geteuid() == 0
	if needRoot && !root {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root; chown to another account needs it")
		}
		t.Skip("chown to another account needs root")
	}
	srv := newServer(t, "Linux x86_64")
	evil, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mkdir(t, evil, 0o777)
	if root {
		chown(t, evil, otherUID)
	}
	home, err := filepath.EvalSymlinks(srv.home)
	if err != nil {
		t.Fatal(err)
	}
	srv.home = home
	plant(t, home, evil)
	var calls, uploads atomic.Int32
	bin := fakeBinary(t, "amd64", 64<<10)
	res, err := Ensure(context.Background(), countingRunner(ExecRunner(srv.argv(t, sh)), &calls, &uploads), Options{Binary: bin})
	if want == nil {
		if err != nil {
			t.Fatal(err)
		}
		checkCopy(t, res.Path, bin)
		return
	}
	if want := want(home, evil); err == nil || err.Error() != want {
		t.Fatalf("Ensure = %+v, %v\nwant error: %s", res, err, want)
	}
	if uploads.Load() != 0 {
		t.Errorf("Ensure uploaded (%d commands, %d with the binary)", calls.Load(), uploads.Load())
	}
	if found := sshvpnFiles(home, evil); len(found) != 0 {
		t.Errorf("copies written: %v", found)
	}
}

// TestEnsureRechecksBeforeUpload: a directory swapped for a symbolic link
// after the probe found it missing is refused by the upload itself.
func TestEnsureRechecksBeforeUpload(t *testing.T) {
	for _, sh := range loginShells() {
		t.Run(sh, func(t *testing.T) {
			srv := newServer(t, "Linux x86_64")
			evil := t.TempDir()
			mkdir(t, evil, 0o777)
			inner := ExecRunner(srv.argv(t, sh))
			run := func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
				if stdin != nil {
					mkdir(t, filepath.Join(srv.home, ".cache"), 0o700)
					if err := os.Symlink(evil, filepath.Join(srv.home, ".cache/sshvpn")); err != nil {
						t.Fatal(err)
					}
				}
				return inner(ctx, cmd, stdin)
			}
			_, err := Ensure(context.Background(), run, Options{Binary: fakeBinary(t, "amd64", 64<<10)})
			want := " on the server is a symbolic link, which sshvpn does not follow for its copy: remove the link (sshvpn then creates the directory, mode 0700)"
			if err == nil || !strings.HasPrefix(err.Error(), "upload: copying ") || !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("Ensure: %v\nwant an error ending: %s", err, want)
			}
			if found := sshvpnFiles(srv.home, evil); len(found) != 0 {
				t.Errorf("copies written: %v", found)
			}
		})
	}
}

// TestVerified: the command from Result.Verified runs the copy Ensure made,
// arguments and all, in every shell; once the copy has changed it refuses,
// saying so, and runs nothing.
func TestVerified(t *testing.T) {
	for _, sh := range loginShells() {
		t.Run(sh, func(t *testing.T) {
			srv := newServer(t, "Linux x86_64")
			run := ExecRunner(srv.argv(t, sh))
			bin := fakeBinary(t, "amd64", 256<<10)
			marker := filepath.Join(t.TempDir(), "ran")
			for _, tc := range []struct {
				name  string
				spoil func(p string) error
			}{
				{"same size, other bytes", func(p string) error {
					f, err := os.OpenFile(p, os.O_WRONLY, 0)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = f.WriteAt([]byte("spoilt"), 5000)
					return err
				}},
				{"truncated", func(p string) error { return os.Truncate(p, 1000) }},
				{"a script in its place", func(p string) error {
					return os.WriteFile(p, []byte("#!/bin/sh\ntouch "+spawn.QuoteWord(marker)+"\n"), 0o755)
				}},
				{"a symbolic link to an identical copy", func(p string) error {
					moved := filepath.Join(filepath.Dir(marker), "moved")
					if err := os.Rename(p, moved); err != nil {
						return err
					}
					return os.Symlink(moved, p)
				}},
				{"missing", os.Remove},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res, err := Ensure(context.Background(), run, Options{Binary: bin})
					if err != nil {
						t.Fatal(err)
					}
					checkCopy(t, res.Path, bin)
					cmd := res.Verified(`printf '%s|' ran "it's" '$HOME'`)
					if out, stderr, err := srv.runCmd(t, sh, cmd); err != nil || out != `ran|it's|$HOME|` || stderr != "" {
						t.Fatalf("the command with the copy intact: %q, stderr %q, %v", out, stderr, err)
					}

					if err := tc.spoil(res.Path); err != nil {
						t.Fatal(err)
					}
					for _, cmd := range []string{cmd, res.Verified(spawn.QuoteWord(res.Path) + " --remote")} {
						out, stderr, err := srv.runCmd(t, sh, cmd)
						want := "sshvpn --upload: " + res.Path + " on the server is not the copy of sshvpn uploaded there (262144 bytes, SHA-256 " + res.sum +
							"): it was changed or replaced since, by someone else or by an upload of another build of this version, so it is not run; start sshvpn again to upload it afresh\n"
						var ee *exec.ExitError
						if !errors.As(err, &ee) || ee.ExitCode() != 1 || out != "" || stderr != want {
							t.Errorf("the command with the copy %s: %q, stderr %q, %v\nwant exit status 1, stderr %q", tc.name, out, stderr, err, want)
						}
					}
					if _, err := os.Stat(marker); err == nil {
						t.Errorf("the script in place of the copy ran")
					}
				})
			}
		})
	}
}

// TestVerifiedBySize: with no SHA-256 tool on the server, the command
// checks the copy's size.
func TestVerifiedBySize(t *testing.T) {
	srv := newServer(t, "Linux x86_64")
	p := filepath.Join(srv.home, "sshvpn-dev")
	if err := os.WriteFile(p, []byte("0123456789"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := Result{Path: p, size: 10}.Verified("echo ran")
	if out, stderr, err := srv.runCmd(t, "sh", cmd); err != nil || out != "ran\n" {
		t.Fatalf("the command: %q, stderr %q, %v", out, stderr, err)
	}
	if err := os.WriteFile(p, []byte("012345678"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := "sshvpn --upload: " + p + " on the server is not the copy of sshvpn uploaded there (10 bytes): it was changed or replaced since, by someone else or by an upload of another build of this version, so it is not run; start sshvpn again to upload it afresh\n"
	if out, stderr, err := srv.runCmd(t, "sh", cmd); err == nil || out != "" || stderr != want {
		t.Fatalf("the command with the copy cut short: %q, stderr %q, %v\nwant stderr %q", out, stderr, err, want)
	}
}
