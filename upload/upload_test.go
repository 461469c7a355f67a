package upload

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/sshvpn/sshvpn/spawn"
)

// server is "the server" of a test: this machine, reached by running
// "env HOME=home PATH=... SHELL -c CMD" through ExecRunner, with a fake
// uname first in PATH so that the system it reports does not depend on
// the test machine.
type server struct {
	home  string
	bin   string // the fake uname's directory, first in PATH
	shell string
	path  string // PATH after bin
}

func newServer(t *testing.T, uname string) *server {
	t.Helper()
	s := &server{home: t.TempDir(), bin: t.TempDir(), shell: lookPath(t, "sh"), path: os.Getenv("PATH")}
	s.setUname(t, uname)
	return s
}

func (s *server) setUname(t *testing.T, uname string) {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' %s\n", spawn.QuoteWord(uname))
	if err := os.WriteFile(filepath.Join(s.bin, "uname"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (s *server) runner() Runner {
	return ExecRunner([]string{"env", "HOME=" + s.home, "PATH=" + s.bin + ":" + s.path, s.shell, "-c"})
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("no %s: %v", name, err)
	}
	return p
}

// fakeBinary writes size bytes that start with the ELF header of a Linux
// executable for goarch and continue at random.
func fakeBinary(t *testing.T, goarch string, size int) string {
	t.Helper()
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386}
	b := make([]byte, size)
	rand.Read(b)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	if goarch == "arm" || goarch == "386" {
		b[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	}
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	b[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	binary.LittleEndian.PutUint16(b[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(b[18:], uint16(machines[goarch]))
	p := filepath.Join(t.TempDir(), "sshvpn-"+goarch)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// checkCopy checks that the file at p is an executable copy of bin.
func checkCopy(t *testing.T, p, bin string) {
	t.Helper()
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes unlike the binary's %d", p, len(got), len(want))
	}
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o755 {
		t.Errorf("%s: mode %v, want 0755", p, st.Mode())
	}
	// No temporary files are left behind.
	ents, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".upload-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestEnsureCopiesThenSkips(t *testing.T) {
	for _, sh := range loginShells() {
		t.Run(sh, func(t *testing.T) {
			srv := newServer(t, "Linux x86_64")
			run := ExecRunner(srv.argv(t, sh))
			bin := fakeBinary(t, "amd64", 1<<20)
			var l logs
			opt := Options{Binary: bin, Version: "sshvpn 1.2.3", Logf: l.logf}
			res, err := Ensure(context.Background(), run, opt)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(srv.home, ".cache/sshvpn/sshvpn-1.2.3")
			if res.Path != want || !res.Copied || res.Note != "" {
				t.Fatalf("first Ensure = %+v, want {Path: %s, Copied: true}", res, want)
			}
			checkCopy(t, want, bin)
			for _, d := range []string{filepath.Dir(want), filepath.Dir(filepath.Dir(want))} {
				if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v %v, want mode 0700", d, st.Mode(), err)
				}
			}
			res, err = Ensure(context.Background(), run, opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != want || res.Copied {
				t.Fatalf("second Ensure = %+v, want {Path: %s, Copied: false}", res, want)
			}
			if !strings.Contains(l.String(), "already has this sshvpn") {
				t.Errorf("logs do not say the copy was skipped:\n%s", l.String())
			}
		})
	}
}

func TestEnsureReplacesBadCopies(t *testing.T) {
	srv := newServer(t, "Linux x86_64")
	bin := fakeBinary(t, "amd64", 1<<20)
	opt := Options{Binary: bin, Version: "1.0"}
	res, err := Ensure(context.Background(), srv.runner(), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		spoil func(p string) error
	}{
		{"truncated", func(p string) error { return os.Truncate(p, 1000) }},
		{"same size, other bytes", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("spoilt"), 5000)
			return err
		}},
		{"not executable", func(p string) error { return os.Chmod(p, 0o644) }},
		{"a symbolic link to an identical copy", func(p string) error {
			moved := filepath.Join(t.TempDir(), "moved")
			if err := os.Rename(p, moved); err != nil {
				return err
			}
			return os.Symlink(moved, p)
		}},
		{"missing", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.spoil(res.Path); err != nil {
				t.Fatal(err)
			}
			got, err := Ensure(context.Background(), srv.runner(), opt)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Copied || got.Path != res.Path {
				t.Fatalf("Ensure = %+v, want a new copy at %s", got, res.Path)
			}
			checkCopy(t, res.Path, bin)
		})
	}
}

func TestEnsurePlatformMismatch(t *testing.T) {
	bin := fakeBinary(t, "amd64", 4096)
	for _, tc := range []struct{ uname, want string }{
		{"Linux aarch64", "upload: the server is Linux aarch64 (arm64) but " + bin + " is linux/amd64: build sshvpn for arm64 (CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build ./cmd/sshvpn) and pass it with --upload-binary, or install sshvpn on the server"},
		{"Linux armv7l", "upload: the server is Linux armv7l (arm) but " + bin + " is linux/amd64: build sshvpn for arm (CGO_ENABLED=0 GOOS=linux GOARCH=arm go build ./cmd/sshvpn) and pass it with --upload-binary, or install sshvpn on the server"},
		{"Darwin arm64", "upload: the server is Darwin arm64, not Linux: install sshvpn on the server"},
		{"Linux mips", "upload: the server is Linux mips, which --upload does not know: install sshvpn on the server"},
		{"", `upload: the server did not say what it is (uname -sm printed "")`},
	} {
		t.Run(tc.uname, func(t *testing.T) {
			srv := newServer(t, tc.uname)
			_, err := Ensure(context.Background(), srv.runner(), Options{Binary: bin})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Ensure: %v\nwant: %s", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(srv.home, ".cache")); !os.IsNotExist(err) {
				t.Errorf("Ensure wrote to the server: %v", err)
			}
		})
	}
}

// TestEnsureDefaultBinary uploads the test binary itself, and says the
// message for a server of another architecture.
func TestEnsureDefaultBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uploads Linux binaries only")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unames := map[string]string{"amd64": "Linux x86_64", "arm64": "Linux aarch64", "arm": "Linux armv7l", "386": "Linux i686",
		"riscv64": "Linux riscv64", "ppc64le": "Linux ppc64le", "s390x": "Linux s390x", "loong64": "Linux loongarch64"}
	if unames[runtime.GOARCH] == "" {
		t.Skipf("no uname for %s", runtime.GOARCH)
	}
	srv := newServer(t, unames[runtime.GOARCH])
	res, err := Ensure(context.Background(), srv.runner(), Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	checkCopy(t, res.Path, self)
	// The copy runs, checked first.
	argv := append(srv.argv(t, "sh"), res.Verified(spawn.QuoteWord(res.Path)+" -test.run=^$"))
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Errorf("running the copy: %v\n%s", err, out)
	}

	other, otherUname := "arm64", "Linux aarch64"
	if runtime.GOARCH == "arm64" {
		other, otherUname = "amd64", "Linux x86_64"
	}
	srv.setUname(t, otherUname)
	_, err = Ensure(context.Background(), srv.runner(), Options{Version: "test"})
	want := fmt.Sprintf("upload: the server is %s (%s) but this sshvpn is linux/%s: build sshvpn for %s (CGO_ENABLED=0 GOOS=linux GOARCH=%s go build ./cmd/sshvpn) and pass it with --upload-binary, or install sshvpn on the server",
		otherUname, other, runtime.GOARCH, other, other)
	if err == nil || err.Error() != want {
		t.Fatalf("Ensure: %v\nwant: %s", err, want)
	}
}

func TestEnsureIgnoresBanners(t *testing.T) {
	srv := newServer(t, "Linux x86_64")
	bin := fakeBinary(t, "amd64", 64<<10)
	inner := srv.runner()
	// What shell startup files might print, including lines that look
	// like Ensure's own but lack its fresh marker, an unterminated line
	// and an overlong one.
	banner := `echo 'Welcome to the server!'; echo 'sshvpn-upload: home=/nowhere'; echo 'sshvpn-upload-0000000000000000 end=ok';` +
		` head -c 100000 /dev/zero | tr '\0' x; echo; printf 'no newline at the end';`
	run := func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
		return inner(ctx, banner+"\n"+cmd, stdin)
	}
	for i, wantCopied := range []bool{true, false} {
		res, err := Ensure(context.Background(), run, Options{Binary: bin})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(srv.home, ".cache/sshvpn/sshvpn-dev"); res.Path != want || res.Copied != wantCopied {
			t.Fatalf("Ensure #%d = %+v, want {Path: %s, Copied: %v}", i+1, res, want, wantCopied)
		}
		checkCopy(t, res.Path, bin)
	}
}

func TestEnsureQuoting(t *testing.T) {
	srv := newServer(t, "Linux x86_64")
	bin := fakeBinary(t, "amd64", 4096)
	opt := Options{Binary: bin, Version: "1.0 beta';$(touch pwned)`x`", Dir: `~/it's a "dir" $HOME \n`}
	res, err := Ensure(context.Background(), srv.runner(), opt)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(srv.home, `it's a "dir" $HOME \n`, "sshvpn-1.0_beta____touch_pwned__x_")
	if res.Path != want {
		t.Fatalf("Path = %q, want %q", res.Path, want)
	}
	checkCopy(t, res.Path, bin)
	if res, err = Ensure(context.Background(), srv.runner(), opt); err != nil || res.Copied {
		t.Fatalf("second Ensure = %+v, %v; want no copy", res, err)
	}

	// An absolute directory.
	abs := filepath.Join(t.TempDir(), "a b", "c")
	res, err = Ensure(context.Background(), srv.runner(), Options{Binary: bin, Dir: abs, Version: "2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(abs, "sshvpn-2"); res.Path != want {
		t.Fatalf("Path = %q, want %q", res.Path, want)
	}
	checkCopy(t, res.Path, bin)
}

// TestEnsureHashTools runs the scripts with a PATH that has the tools they
// need and one SHA-256 tool, or none.
func TestEnsureHashTools(t *testing.T) {
	for _, hasher := range []string{"sha256sum", "openssl", "shasum", ""} {
		t.Run(cmp.Or(hasher, "none"), func(t *testing.T) {
			srv := newServer(t, "Linux x86_64")
			tools := t.TempDir()
			names := []string{"wc", "cat", "mkdir", "chmod", "mv", "rm", "ls", "id"}
			if hasher != "" {
				names = append(names, hasher)
			}
			for _, name := range names {
				if err := os.Symlink(lookPath(t, name), filepath.Join(tools, name)); err != nil {
					t.Fatal(err)
				}
			}
			srv.path = tools
			if hasher == "shasum" {
				srv.path += ":" + filepath.Dir(lookPath(t, "perl"))
			}
			bin := fakeBinary(t, "amd64", 64<<10)
			for i := range 2 {
				res, err := Ensure(context.Background(), srv.runner(), Options{Binary: bin})
				if err != nil {
					t.Fatal(err)
				}
				checkCopy(t, res.Path, bin)
				if hasher == "" {
					if !res.Copied || !strings.Contains(res.Note, "checked by its size only") {
						t.Fatalf("Ensure #%d = %+v, want a copy checked by size", i+1, res)
					}
				} else if res.Copied != (i == 0) || res.Note != "" {
					t.Fatalf("Ensure #%d = %+v, want Copied: %v", i+1, res, i == 0)
				}
			}
		})
	}
}

func TestEnsureDamagedUpload(t *testing.T) {
	bin := fakeBinary(t, "amd64", 256<<10)
	for _, tc := range []struct {
		name   string
		damage func(io.Reader) io.Reader
		want   string
	}{
		{"cut short", func(r io.Reader) io.Reader { return io.LimitReader(r, 1000) }, "the copy has 1000 bytes, not 262144: the upload was cut short"},
		{"corrupted", func(r io.Reader) io.Reader {
			b, _ := io.ReadAll(r)
			b[len(b)/2] ^= 1
			return bytes.NewReader(b)
		}, "it was corrupted on the way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, "Linux x86_64")
			inner := srv.runner()
			run := func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
				if stdin != nil {
					stdin = tc.damage(stdin)
				}
				return inner(ctx, cmd, stdin)
			}
			_, err := Ensure(context.Background(), run, Options{Binary: bin})
			if err == nil || !strings.HasPrefix(err.Error(), "upload: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ensure: %v, want an error saying %q", err, tc.want)
			}
			dir := filepath.Join(srv.home, ".cache/sshvpn")
			if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
				t.Fatalf("%s holds %v (%v), want nothing", dir, ents, err)
			}
		})
	}
}

func TestEnsureFailures(t *testing.T) {
	bin := fakeBinary(t, "amd64", 4096)

	// ssh cannot log in.
	run := ExecRunner([]string{"sh", "-c", `printf 'Warning: \033[31mred\033[0m\n\nroot@server: Permission denied (publickey).\n' >&2; exit 255`, "ssh"})
	_, err := Ensure(context.Background(), run, Options{Binary: bin})
	want := "upload: probing the server: sh exited with status 255: Warning: [31mred[0m; root@server: Permission denied (publickey)."
	if err == nil || err.Error() != want {
		t.Errorf("Ensure: %v\nwant: %s", err, want)
	}

	// The directory cannot be made: a file is in the way, which the probe
	// sees.
	srv := newServer(t, "Linux x86_64")
	blocker := filepath.Join(srv.home, "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Ensure(context.Background(), srv.runner(), Options{Binary: bin, Dir: "blocker/sub"})
	want = "upload: the directory " + blocker + "/sub on the server cannot be created: " + blocker + " is not a directory"
	if err == nil || err.Error() != want {
		t.Errorf("Ensure: %v\nwant: %s", err, want)
	}
	// Or a file that appears after the probe, which the upload sees. (A
	// binary larger than a pipe's buffer: the script exits without
	// reading it.)
	os.Remove(blocker)
	inner := srv.runner()
	run = func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
		if stdin != nil {
			if err := os.WriteFile(blocker, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return inner(ctx, cmd, stdin)
	}
	_, err = Ensure(context.Background(), run, Options{Binary: fakeBinary(t, "amd64", 1<<20), Dir: "blocker/sub"})
	if err == nil || !strings.HasPrefix(err.Error(), "upload: copying ") || !strings.HasSuffix(err.Error(), "sub on the server cannot be created: "+blocker+" is not a directory") {
		t.Errorf("Ensure: %v, want an error about the directory", err)
	}
	os.Remove(blocker)

	// The login shell is not a POSIX shell: it ignores the command.
	_, err = Ensure(context.Background(), ExecRunner([]string{"sh", "-c", "echo hello", "sh"}), Options{Binary: bin})
	if err == nil || !strings.Contains(err.Error(), "is the login shell a POSIX shell") {
		t.Errorf("Ensure: %v, want an error about the shell", err)
	}

	// Not a Linux executable.
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	_, err = Ensure(context.Background(), srv.runner(), Options{Binary: script})
	if want := "upload: " + script + ": not an ELF executable, so not a Linux sshvpn"; err == nil || err.Error() != want {
		t.Errorf("Ensure: %v\nwant: %s", err, want)
	}
	_, err = Ensure(context.Background(), srv.runner(), Options{Binary: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.HasPrefix(err.Error(), "upload: open ") {
		t.Errorf("Ensure: %v, want an error opening the binary", err)
	}

	// A cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Ensure(ctx, srv.runner(), Options{Binary: bin}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Ensure: %v, want context canceled", err)
	}
}

func TestEnsureConcurrent(t *testing.T) {
	srv := newServer(t, "Linux x86_64")
	bin := fakeBinary(t, "amd64", 256<<10)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Ensure(context.Background(), srv.runner(), Options{Binary: bin}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkCopy(t, filepath.Join(srv.home, ".cache/sshvpn/sshvpn-dev"), bin)
}

func TestElfPlatform(t *testing.T) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Skip(err)
	}
	defer self.Close()
	if goos, goarch, err := elfPlatform(self); err != nil || goos != runtime.GOOS || goarch != runtime.GOARCH {
		t.Errorf("elfPlatform(test binary) = %s/%s, %v; want %s/%s", goos, goarch, err, runtime.GOOS, runtime.GOARCH)
	}
	for _, goarch := range []string{"amd64", "arm64", "arm", "386"} {
		f, err := os.Open(fakeBinary(t, goarch, 64))
		if err != nil {
			t.Fatal(err)
		}
		if goos, got, err := elfPlatform(f); err != nil || goos != "linux" || got != goarch {
			t.Errorf("elfPlatform(%s) = %s/%s, %v", goarch, goos, got, err)
		}
		f.Close()
	}
}

func TestUnameArch(t *testing.T) {
	for _, tc := range []struct{ sys, machine, want string }{
		{"Linux", "x86_64", "amd64"}, {"Linux", "aarch64", "arm64"}, {"Linux", "arm64", "arm64"},
		{"Linux", "armv7l", "arm"}, {"Linux", "armv6l", "arm"}, {"Linux", "i686", "386"}, {"Linux", "i386", "386"},
		{"Linux", "riscv64", "riscv64"}, {"Linux", "ppc64le", "ppc64le"}, {"Linux", "s390x", "s390x"},
		{"Linux", "mips", ""}, {"Darwin", "arm64", ""}, {"FreeBSD", "amd64", ""},
	} {
		got, ok := unameArch(tc.sys, tc.machine)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("unameArch(%q, %q) = %q, %v; want %q", tc.sys, tc.machine, got, ok, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	sh := lookPath(t, "sh")
	for _, s := range []string{"", "plain/path-1.0", "it's", "'", "''", `a "b" $c`, "`x`", `\`, "a\nb", " lead", "*", "~", "-n", "$(echo hi)"} {
		out, err := exec.Command(sh, "-c", "printf %s "+spawn.QuoteWord(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printf %s = %q, %v; want %q", spawn.QuoteWord(s), out, err, s)
		}
	}
}

func TestSanitizeVersion(t *testing.T) {
	for in, want := range map[string]string{
		"": "dev", "sshvpn dev": "dev", "sshvpn 0.1.0": "0.1.0", "v1.2.3-rc.1+dirty": "v1.2.3-rc.1_dirty",
		"../../etc": ".._.._etc", "日本": "______", strings.Repeat("x", 100): strings.Repeat("x", maxVersion),
	} {
		if got := sanitizeVersion(in); got != want {
			t.Errorf("sanitizeVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDir(t *testing.T) {
	for _, tc := range []struct{ in, rel, abs, err string }{
		{"", ".cache/sshvpn", "", ""},
		{"~", ".", "", ""},
		{"~/bin/", "bin", "", ""},
		{"$HOME/x/../y", "y", "", ""},
		{"rel/dir", "rel/dir", "", ""},
		{"/opt//sshvpn/", "", "/opt/sshvpn", ""},
		{"~bob/x", "", "", "only ~/ and $HOME/"},
		{"a\nb", "", "", "control characters"},
	} {
		rel, abs, err := parseDir(tc.in)
		if rel != tc.rel || abs != tc.abs || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("parseDir(%q) = %q, %q, %v; want %q, %q, %q", tc.in, rel, abs, err, tc.rel, tc.abs, tc.err)
		}
	}
}

func TestParseReply(t *testing.T) {
	m := "sshvpn-upload-1234"
	out := []byte("banner\n" + m + " a=1\n" + m + " b=x=y\n" + m + " " + strings.Repeat("c", maxLine) + "=2\n" + m + "noseparator=1\n" + m + " end=ok\n")
	kv, err := parseReply(out, m, "probe")
	if err != nil {
		t.Fatal(err)
	}
	if len(kv) != 3 || kv["a"] != "1" || kv["b"] != "x=y" || kv["end"] != "ok" {
		t.Errorf("parseReply = %v", kv)
	}
	if _, err := parseReply([]byte(m+" a=1\n"+m+" a=2\n"+m+" end=ok\n"), m, "probe"); err == nil || !strings.Contains(err.Error(), `says "a" twice`) {
		t.Errorf("duplicate key: %v", err)
	}
	if _, err := parseReply([]byte(m+" a=1\n"), m, "probe"); err == nil {
		t.Error("missing end: no error")
	}
}

func TestHexIn(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		h + "  -": h, "SHA2-256(stdin)= " + strings.ToUpper(h): h, "(stdin)= " + h: h, "": "", "xyz  -": "", h[:62] + "  -": "",
	} {
		if got := hexIn(in); got != want {
			t.Errorf("hexIn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExecRunner(t *testing.T) {
	sh := lookPath(t, "sh")
	out, err := ExecRunner([]string{sh, "-c"})(context.Background(), "tr a-z A-Z", strings.NewReader("hello"))
	if err != nil || string(out) != "HELLO" {
		t.Errorf("ExecRunner = %q, %v", out, err)
	}
	// Only the last MiB of stdout is kept.
	out, err = ExecRunner([]string{sh, "-c"})(context.Background(), "head -c 3000000 /dev/zero; printf end", nil)
	if err != nil || len(out) != maxStdout || !bytes.HasSuffix(out, []byte("end")) {
		t.Errorf("ExecRunner: %d bytes ending %q, %v", len(out), out[max(0, len(out)-3):], err)
	}
	// A background child that keeps stdout open does not hold it up.
	out, err = ExecRunner([]string{sh, "-c"})(context.Background(), "(sleep 5 &) ; echo done", nil)
	if err != nil || string(out) != "done\n" {
		t.Errorf("ExecRunner with a lingering child = %q, %v", out, err)
	}
	if _, err := ExecRunner(nil)(context.Background(), "true", nil); err == nil {
		t.Error("ExecRunner(nil): no error")
	}
}

func TestCleanStderr(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"\n\n":                        "",
		"one\r\ntwo\n":                "one; two",
		"\x1b[2Jbell\a\tand\u202etab": "[2Jbell andtab",
		"bad \xff utf8":               "bad \uFFFD utf8",
	} {
		if got := cleanStderr([]byte(in)); got != want {
			t.Errorf("cleanStderr(%q) = %q, want %q", in, got, want)
		}
	}
	long := cleanStderr([]byte(strings.Repeat("é", 400) + "\nthe end"))
	if !strings.HasPrefix(long, "…") || !strings.HasSuffix(long, "; the end") || len(long) > maxStderrMsg+len("…") || !strings.Contains(long, "é") {
		t.Errorf("cleanStderr(long) = %q", long)
	}
}

// TestEnsureDynamicBinary: a dynamically linked binary is copied, with a
// note that it needs its loader on the server and how to build the static
// one; a static one gets no such note.
func TestEnsureDynamicBinary(t *testing.T) {
	dyn := ""
	for _, p := range []string{"/bin/sh", "/usr/bin/env", "/bin/ls"} {
		if f, err := os.Open(p); err == nil {
			if interpreter(f) != "" {
				dyn = p
			}
			f.Close()
		}
		if dyn != "" {
			break
		}
	}
	if dyn == "" || runtime.GOARCH != "amd64" {
		t.Skip("no dynamically linked amd64 executable to try")
	}
	if interpreter(strings.NewReader("not an ELF file")) != "" {
		t.Error("an interpreter for a file that is not ELF")
	}
	srv := newServer(t, "Linux x86_64")
	res, err := Ensure(context.Background(), ExecRunner(srv.argv(t, loginShells()[0])), Options{Binary: dyn, Version: "sshvpn 1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Note, "dynamically linked") || !strings.Contains(res.Note, "CGO_ENABLED=0") {
		t.Errorf("note %q, want one about a dynamically linked binary", res.Note)
	}
	static := fakeBinary(t, "amd64", 1<<10)
	if res, err := Ensure(context.Background(), ExecRunner(srv.argv(t, loginShells()[0])), Options{Binary: static, Version: "sshvpn 1.2.4"}); err != nil || res.Note != "" {
		t.Errorf("a static binary: %+v, %v; want no note", res, err)
	}
}
