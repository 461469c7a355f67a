// Package upload makes sshvpn usable on a server that has no sshvpn
// installed: Ensure copies an sshvpn binary (by default the running one) to
// the server over ssh and returns the path to run there, as
// "PATH --remote".
//
// Ensure talks to the server through a Runner, a function that runs one
// shell command there, so that it can be tested without ssh; ExecRunner is
// the Runner that runs the system ssh client. It takes two round trips at
// most: a probe that reports the server's system (uname -sm), $HOME, whether
// the directory for the copy is safe and the size and SHA-256 of a copy
// already there, and, unless that copy is the same, the upload itself, which
// writes a temporary file, checks its size and SHA-256 on the server and
// renames it into place. The binary's system and architecture, read from its
// ELF header, must match the server's.
//
// What runs as the remote sshvpn must be what was uploaded, and nobody but
// the account (and root) may be able to change it. So the directory that
// holds the copy must be a directory, not a symbolic link, belong to the
// account and be writable by it only, and the directories above it, up to
// $HOME (or /), must belong to the account or root and be writable by their
// owner only (or be sticky, as /tmp is): Ensure refuses any other, saying
// what to mend, and creates missing ones with mode 0700. And since a copy
// could still be replaced between an upload and a later run (a reconnect),
// [Result.Verified] wraps the command that runs it in a check of its size
// and SHA-256, made by the server right before each run.
package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/sshvpn/sshvpn/spawn"
)

// Runner runs a shell command on the server, as "ssh host CMD" would,
// through the user's login shell, with stdin as its standard input (nil:
// none), and returns its standard output. A non-zero exit is an error that
// carries the command's standard error.
type Runner func(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)

// Options configure Ensure.
type Options struct {
	// Binary is the local sshvpn executable to upload. Empty means the
	// running program (os.Executable).
	Binary string
	// Version names the copy on the server: sshvpn-VERSION. A leading
	// "sshvpn " (as in the handshake's software name) is dropped and characters other
	// than [A-Za-z0-9._-] become '_'. Empty means "dev".
	Version string
	// Dir is the directory on the server that holds the copy. Empty means
	// ~/.cache/sshvpn. A path that starts with "~/" or "$HOME/", or is
	// relative, is taken relative to the server's $HOME; missing
	// directories are created with mode 0700. An existing one must be safe
	// (see the package documentation), or Ensure fails.
	Dir string
	// Logf, if set, says what Ensure found and did.
	Logf func(format string, args ...any)
}

// Result is what Ensure did.
type Result struct {
	// Path is the absolute path of the sshvpn copy on the server. It is
	// not quoted: quote it for the shell to build the remote command.
	Path string
	// Copied is false when an identical copy (same size, same SHA-256,
	// executable) was already there.
	Copied bool
	// Note, if not empty, is a caveat worth telling the user, such as that
	// the server could only check the copy's size.
	Note string

	size   int64  // of the copy
	sum    string // its SHA-256, lower-case hex
	hashed bool   // the server has a SHA-256 tool
}

const (
	defaultDir = ".cache/sshvpn" // relative to the server's $HOME
	maxLine    = 4096            // longer lines of the server's output are ignored
	maxVersion = 64              // bytes of the sanitised version kept
	hashTools  = "sha256sum, openssl or shasum"
)

// Ensure makes sure the server has a copy of the binary and returns where.
// All its errors start with "upload: ".
func Ensure(ctx context.Context, run Runner, opt Options) (Result, error) {
	logf := opt.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := openBinary(opt.Binary)
	if err != nil {
		return Result{}, err
	}
	defer bin.f.Close()

	relDir, absDir, err := parseDir(opt.Dir)
	if err != nil {
		return Result{}, err
	}
	name := "sshvpn-" + sanitizeVersion(opt.Version)
	marker, err := newMarker()
	if err != nil {
		return Result{}, err
	}

	// Round trip 1: what is the server, and what does it have?
	dirExpr, fileExpr := spawn.QuoteWord(absDir), spawn.QuoteWord(path.Join(absDir, name))
	if absDir == "" {
		dirExpr, fileExpr = `"$HOME"`, `"$HOME"/`+spawn.QuoteWord(path.Join(relDir, name))
		if relDir != "." {
			dirExpr += "/" + spawn.QuoteWord(relDir)
		}
	}
	out, err := run(ctx, probeScript(marker, dirExpr, fileExpr), nil)
	if err != nil {
		return Result{}, fmt.Errorf("upload: probing the server: %w", err)
	}
	probe, err := parseReply(out, marker, "probe")
	if err != nil {
		return Result{}, err
	}
	if err := checkPlatform(probe["uname"], bin); err != nil {
		return Result{}, err
	}
	dir := absDir
	if dir == "" {
		home := probe["home"]
		if !strings.HasPrefix(home, "/") || hasControl(home) {
			return Result{}, fmt.Errorf("upload: the server's $HOME is %q, not an absolute path: set Dir to an absolute path", home)
		}
		dir = path.Join(home, relDir)
	}
	// The directory, or those above it, may belong to or be writable by
	// another account, which could then swap the copy.
	switch st := probe["dir"]; {
	case strings.HasPrefix(st, "bad "):
		return Result{}, errors.New("upload: " + strings.TrimPrefix(st, "bad "))
	case st != "ok" && st != "missing":
		return Result{}, fmt.Errorf("upload: the server did not say whether the directory for the copy is safe (%q)", st)
	}
	res := Result{Path: path.Join(dir, name), size: bin.size, sum: bin.sum, hashed: probe["hasher"] != "none"}
	if bin.interp != "" {
		// It runs only where its loader and C libraries are.
		res.Note = fmt.Sprintf("%s is dynamically linked (it needs %s and its C libraries on the server); the static build runs on any Linux of its architecture: CGO_ENABLED=0 go build ./cmd/sshvpn, then --upload-binary", bin.path, bin.interp)
	}
	if probe["dir"] == "ok" && probe["hasher"] != "none" && probe["size"] == strconv.FormatInt(bin.size, 10) && probe["exec"] == "yes" && hexIn(probe["sha256"]) == bin.sum {
		logf("upload: the server already has this sshvpn at %s (%d bytes, sha256 %.16s…)", res.Path, bin.size, bin.sum)
		return res, nil
	}
	if probe["size"] != "" {
		logf("upload: replacing %s on the server (%s bytes, sha256 %.16s…) with %s (%d bytes, sha256 %.16s…)",
			res.Path, probe["size"], hexIn(probe["sha256"]), bin.path, bin.size, bin.sum)
	} else {
		logf("upload: copying %s (%d bytes) to %s on the server", bin.path, bin.size, res.Path)
	}

	// Round trip 2: copy, check on the server, rename into place.
	tmp := path.Join(dir, "."+name+".upload-"+strings.TrimPrefix(marker, "sshvpn-upload-"))
	script := uploadScript(marker, dir, res.Path, tmp, bin.size, bin.sum)
	out, err = run(ctx, script, io.NewSectionReader(bin.f, 0, bin.size))
	if err != nil {
		return Result{}, fmt.Errorf("upload: copying %s to %s on the server: %w", bin.path, res.Path, err)
	}
	got, err := parseReply(out, marker, "upload")
	if err != nil {
		return Result{}, err
	}
	// The script checked the copy before renaming it; check what it says.
	if got["size"] != strconv.FormatInt(bin.size, 10) {
		return Result{}, fmt.Errorf("upload: the copy at %s on the server has %q bytes, not %d", res.Path, got["size"], bin.size)
	}
	res.hashed = got["hasher"] != "none"
	if got["hasher"] == "none" {
		res.Note = strings.TrimPrefix(res.Note+"; ", "; ") + fmt.Sprintf("the server has none of %s, so the copy at %s was checked by its size only (and is copied again each time)", hashTools, res.Path)
	} else if s := hexIn(got["sha256"]); s != bin.sum {
		return Result{}, fmt.Errorf("upload: the copy at %s on the server has SHA-256 %q, not %s", res.Path, s, bin.sum)
	}
	res.Copied = true
	logf("upload: copied %d bytes to %s on the server and checked them", bin.size, res.Path)
	return res, nil
}

// Verified returns a command line for the server's login shell that runs
// cmd, the command line that runs the copy (a simple command: "PATH
// --remote ...", or "sudo -n PATH --remote ..."), with exec, after checking
// that the copy at r.Path is still the one Ensure left there: a regular file,
// not a symbolic link, of the same size and, if the server has a SHA-256
// tool, the same SHA-256. Otherwise it says why on stderr and exits with
// status 1, which the client takes as a failure that connecting again
// cannot mend. Use it for every run, reconnections included: the copy may
// have been replaced since Ensure checked it.
func (r Result) Verified(cmd string) string {
	n := strconv.FormatInt(r.size, 10)
	check := `[ -f "$sshvpn_f" ] && [ ! -L "$sshvpn_f" ] && sshvpn_s=$(wc -c <"$sshvpn_f") && [ "${sshvpn_s##* }" = ` + n + ` ]`
	what := n + " bytes"
	if r.hashed {
		check += ` && case $( { sha256sum || openssl dgst -sha256 || shasum -a 256; } <"$sshvpn_f" 2>/dev/null) in *` + r.sum + `*) true ;; *) false ;; esac`
		what += ", SHA-256 " + r.sum
	}
	msg := "sshvpn --upload: %s on the server is not the copy of sshvpn uploaded there (" + what +
		"): it was changed or replaced since, by someone else or by an upload of another build of this version, so it is not run; start sshvpn again to upload it afresh\\n"
	return `sshvpn_f=` + spawn.QuoteWord(r.Path) + `; if ` + check +
		`; then exec ` + cmd + `; fi; printf ` + spawn.QuoteWord(msg) + ` "$sshvpn_f" >&2; exit 1`
}

// hashFunc is the shell code that picks the server's SHA-256 tool, sets $h
// to its name (empty: none) and defines sshvpn_hash to hash stdin with it.
// Variable names avoid those special in zsh (path, status, ...).
const hashFunc = `h=
for c in sha256sum openssl shasum; do if command -v "$c" >/dev/null 2>&1; then h=$c; break; fi; done
sshvpn_hash() { case $h in sha256sum) sha256sum ;; openssl) openssl dgst -sha256 ;; shasum) shasum -a 256 ;; *) return 1 ;; esac; }
`

// dirFunc is the shell code that defines sshvpn_dir DIR, which checks that
// DIR (an absolute path) is safe to keep the copy in, or, if DIR is
// missing, to create it in. If not, it sets $w to the end of a sentence
// that starts "the directory DIR on the server", saying what is wrong and
// what to do, and returns 1.
//
// DIR, if it exists, must be a directory, not a symbolic link, belong to
// the account (id -u) and be writable by its owner only. The directories
// above it (the first existing one, if DIR is missing, and those above
// that), as they are after symbolic links, up to the account's $HOME or /,
// must belong to the account or root and be writable by their owner only,
// or be sticky. The owner and mode come from "ls -ldn", which POSIX has,
// and busybox; stat has no portable options.
const dirFunc = `sshvpn_ls() { set -f; set -- $(ls -ldn "$1" 2>/dev/null); set +f; p=${1:-} o=${3:-}; }
sshvpn_up() {
  sshvpn_ls "$1"
  case $p in d*) ;; *) w="cannot be checked: ls -ldn $1 printed ${p:-nothing}"; return 1 ;; esac
  if [ "$o" != "$u" ] && [ "$o" != 0 ]; then
    w="is in $1, which belongs to uid $o, neither to uid $u that sshvpn logs in as nor to root: fix the owner of $1, or have root remove it"; return 1
  fi
  case $p in ?????w*|????????w*) case $p in ?????????[tT]*) ;; *)
    w="is in $1, which others than its owner can write to ($p): chmod go-w $1"; return 1 ;; esac ;; esac
}
sshvpn_dir() {
  u=$(id -u); w=; q=$1
  while [ ! -e "$q" ] && [ ! -L "$q" ]; do q=${q%/*}; q=${q:-/}; done
  if [ "$q" = "$1" ]; then
    sshvpn_ls "$1"
    case $p in
    l*) w="is a symbolic link, which sshvpn does not follow for its copy: remove the link (sshvpn then creates the directory, mode 0700)"; return 1 ;;
    d*) ;;
    '') w="cannot be checked: ls -ldn $1 printed nothing"; return 1 ;;
    *) w="is not a directory: remove it or move it away"; return 1 ;;
    esac
    if [ "$o" != "$u" ]; then
      w="belongs to uid $o, not to uid $u that sshvpn logs in as: remove it, as root if need be (sshvpn then creates it, mode 0700)"; return 1
    fi
    case $p in ?????w*|????????w*)
      w="is writable by others than its owner ($p): remove it, with whatever others may have put in it (sshvpn then creates it, mode 0700)"; return 1 ;;
    esac
  elif [ ! -d "$q" ]; then
    w="cannot be created: $q is not a directory"; return 1
  fi
  r=$(cd -P "$q" 2>/dev/null && pwd -P) || { w="cannot be checked: cannot enter $q"; return 1; }
  if [ "$q" != "$1" ]; then sshvpn_up "$r" || return 1; fi
  hp=$(cd -P "$HOME" 2>/dev/null && pwd -P)
  while [ "$r" != "$hp" ] && [ "$r" != / ]; do
    r=${r%/*}; r=${r:-/}
    sshvpn_up "$r" || return 1
  done
}
`

// probeScript reports the server's system, $HOME, SHA-256 tool, whether
// the directory at dirExpr (a shell word) is safe, and the size, mode and
// SHA-256 of the file at fileExpr (a shell word) if any. The first newline
// ends any unterminated line a startup file printed.
func probeScript(marker, dirExpr, fileExpr string) string {
	return `printf '\n'
m=` + marker + `
` + hashFunc + dirFunc + `d=` + dirExpr + `
f=` + fileExpr + `
printf '%s uname=%s\n' "$m" "$(uname -sm 2>/dev/null)"
printf '%s home=%s\n' "$m" "$HOME"
printf '%s hasher=%s\n' "$m" "${h:-none}"
if ! sshvpn_dir "$d"; then printf '%s dir=bad the directory %s on the server %s\n' "$m" "$d" "$w"
elif [ -d "$d" ]; then printf '%s dir=ok\n' "$m"
else printf '%s dir=missing\n' "$m"
fi
if [ -f "$f" ]; then
  s=$(wc -c <"$f"); printf '%s size=%s\n' "$m" "${s##* }"
  if [ -x "$f" ] && [ ! -L "$f" ]; then printf '%s exec=yes\n' "$m"; fi
  if [ -n "$h" ]; then printf '%s sha256=%s\n' "$m" "$(sshvpn_hash <"$f")"; fi
fi
printf '%s end=ok\n' "$m"
`
}

// uploadScript checks dir (as the probe did: it may have changed since),
// creates it if missing, writes stdin to tmp, checks its size and SHA-256,
// makes it executable and renames it to file; on any failure it removes
// tmp and exits non-zero with a message on stderr.
func uploadScript(marker, dir, file, tmp string, size int64, sum string) string {
	n := strconv.FormatInt(size, 10)
	return `printf '\n'
m=` + marker + `
` + hashFunc + dirFunc + `d=` + spawn.QuoteWord(dir) + `
f=` + spawn.QuoteWord(file) + `
t=` + spawn.QuoteWord(tmp) + `
umask 077
trap 'rm -f "$t"' EXIT
trap 'rm -f "$t"; exit 1' HUP INT TERM
sshvpn_fail() { printf '%s\n' "$1" >&2; exit 1; }
sshvpn_dir "$d" || sshvpn_fail "the directory $d on the server $w"
mkdir -p "$d" || sshvpn_fail "cannot create the directory $d"
sshvpn_dir "$d" || sshvpn_fail "the directory $d on the server $w"
if [ -d "$f" ]; then sshvpn_fail "$f is a directory"; fi
cat >"$t" || sshvpn_fail "cannot write $t"
s=$(wc -c <"$t"); s=${s##* }
[ "$s" = ` + n + ` ] || sshvpn_fail "the copy has $s bytes, not ` + n + `: the upload was cut short"
got=
if [ -n "$h" ]; then
  got=$(sshvpn_hash <"$t")
  case $got in *` + sum + `*) ;; *) sshvpn_fail "the copy's SHA-256 (by $h) is not ` + sum + `: it was corrupted on the way" ;; esac
fi
chmod 755 "$t" || sshvpn_fail "cannot make $t executable"
mv -f "$t" "$f" || sshvpn_fail "cannot rename $t to $f"
printf '%s hasher=%s\n' "$m" "${h:-none}"
printf '%s size=%s\n' "$m" "$s"
printf '%s sha256=%s\n' "$m" "$got"
printf '%s end=ok\n' "$m"
`
}

// parseReply collects the "MARKER key=value" lines of out. Other lines
// (banners from the server's shell startup files) and overlong lines are
// ignored; a key given twice or a missing end line is an error.
func parseReply(out []byte, marker, what string) (map[string]string, error) {
	kv := make(map[string]string)
	prefix := []byte(marker + " ")
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(line) > maxLine || !bytes.HasPrefix(line, prefix) {
			continue
		}
		k, v, ok := strings.Cut(string(line[len(prefix):]), "=")
		if !ok {
			continue
		}
		if _, dup := kv[k]; dup {
			return nil, fmt.Errorf("upload: the server's reply to the %s says %q twice", what, k)
		}
		kv[k] = v
	}
	if kv["end"] != "ok" {
		return nil, fmt.Errorf("upload: the server's reply to the %s is incomplete: is the login shell a POSIX shell (sh, bash, dash, zsh)?", what)
	}
	return kv, nil
}

// hexIn returns the first 64-digit hex word of a hashing tool's output
// ("HEX  -" from sha256sum and shasum, "SHA2-256(stdin)= HEX" from
// openssl), in lower case, or "".
func hexIn(s string) string {
	for _, w := range strings.Fields(s) {
		if len(w) == 2*sha256.Size {
			if _, err := hex.DecodeString(w); err == nil {
				return strings.ToLower(w)
			}
		}
	}
	return ""
}

// localBinary is the open binary to upload.
type localBinary struct {
	f      *os.File
	path   string // for messages
	self   bool   // the running program
	size   int64
	sum    string // SHA-256, lower-case hex
	goos   string // from the ELF header
	goarch string
	interp string // the program interpreter of a dynamically linked binary
}

// openBinary opens the binary, reads its platform and hashes it. The file
// stays open so that the bytes uploaded are the bytes hashed even if the
// path is replaced meanwhile (the server checks the hash anyway).
func openBinary(name string) (*localBinary, error) {
	b := &localBinary{path: name}
	var err error
	if name == "" {
		b.self = true
		if b.path, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("upload: cannot find this program's executable: %w", err)
		}
		// /proc/self/exe is the running binary even if its path has been
		// replaced or removed since it started.
		b.f, err = os.Open("/proc/self/exe")
		if err != nil {
			b.f, err = os.Open(b.path)
		}
	} else {
		b.f, err = os.Open(name)
	}
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			b.f.Close()
		}
	}()
	st, err := b.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return nil, fmt.Errorf("upload: %s is not an executable file", b.path)
	}
	b.size = st.Size()
	if b.goos, b.goarch, err = elfPlatform(b.f); err != nil {
		return nil, fmt.Errorf("upload: %s: %w", b.path, err)
	}
	b.interp = interpreter(io.NewSectionReader(b.f, 0, b.size))
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b.f, 0, b.size)); err != nil {
		return nil, fmt.Errorf("upload: reading %s: %w", b.path, err)
	}
	b.sum = hex.EncodeToString(h.Sum(nil))
	ok = true
	return b, nil
}

// interpreter is the program interpreter (PT_INTERP) of a dynamically
// linked ELF executable, "" for a static one.
func interpreter(r io.ReaderAt) string {
	f, err := elf.NewFile(r)
	if err != nil {
		return ""
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP && p.Filesz > 0 && p.Filesz < 4096 {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				return strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return ""
}

// elfPlatform reads the GOOS and GOARCH an executable is for from its ELF
// header.
func elfPlatform(r io.ReaderAt) (goos, goarch string, err error) {
	var h [20]byte
	if _, err := r.ReadAt(h[:], 0); err != nil || string(h[:4]) != elf.ELFMAG {
		return "", "", errors.New("not an ELF executable, so not a Linux sshvpn")
	}
	class, data, osabi := elf.Class(h[elf.EI_CLASS]), elf.Data(h[elf.EI_DATA]), elf.OSABI(h[elf.EI_OSABI])
	var bo binary.ByteOrder = binary.LittleEndian
	if data == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	if osabi != elf.ELFOSABI_NONE && osabi != elf.ELFOSABI_LINUX {
		return "", "", fmt.Errorf("an executable for %v, not Linux", osabi)
	}
	m := elf.Machine(bo.Uint16(h[18:20]))
	is64 := class == elf.ELFCLASS64
	switch {
	case m == elf.EM_X86_64 && is64:
		goarch = "amd64"
	case m == elf.EM_386 && !is64:
		goarch = "386"
	case m == elf.EM_AARCH64 && is64:
		goarch = "arm64"
	case m == elf.EM_ARM && !is64:
		goarch = "arm"
	case m == elf.EM_RISCV && is64:
		goarch = "riscv64"
	case m == elf.EM_PPC64 && is64 && data == elf.ELFDATA2LSB:
		goarch = "ppc64le"
	case m == elf.EM_PPC64 && is64:
		goarch = "ppc64"
	case m == elf.EM_S390 && is64:
		goarch = "s390x"
	case m == elf.EM_LOONGARCH && is64:
		goarch = "loong64"
	default:
		return "", "", fmt.Errorf("an executable for %v (%v), which --upload does not know", m, class)
	}
	return "linux", goarch, nil
}

// unameArch maps the output of "uname -sm" to a GOARCH; ok is false for
// systems other than Linux and unknown machines.
func unameArch(sys, machine string) (goarch string, ok bool) {
	if sys != "Linux" {
		return "", false
	}
	switch machine {
	case "x86_64", "amd64":
		return "amd64", true
	case "aarch64", "arm64":
		return "arm64", true
	case "armv6l", "armv7l", "armv8l", "armv7", "armv6":
		return "arm", true
	case "i386", "i486", "i586", "i686":
		return "386", true
	case "riscv64", "ppc64le", "ppc64", "s390x":
		return machine, true
	case "loongarch64":
		return "loong64", true
	}
	return "", false
}

// checkPlatform says whether bin can run on a server whose "uname -sm" is
// uname.
func checkPlatform(uname string, bin *localBinary) error {
	f := strings.Fields(uname)
	if len(f) != 2 || hasControl(uname) {
		return fmt.Errorf("upload: the server did not say what it is (uname -sm printed %q)", uname)
	}
	sys, machine := f[0], f[1]
	goarch, ok := unameArch(sys, machine)
	switch {
	case sys != "Linux":
		return fmt.Errorf("upload: the server is %s %s, not Linux: install sshvpn on the server", sys, machine)
	case !ok:
		return fmt.Errorf("upload: the server is %s %s, which --upload does not know: install sshvpn on the server", sys, machine)
	case goarch == bin.goarch && bin.goos == "linux":
		return nil
	}
	this := "this sshvpn"
	if !bin.self {
		this = bin.path
	}
	return fmt.Errorf("upload: the server is %s %s (%s) but %s is %s/%s: build sshvpn for %s (CGO_ENABLED=0 GOOS=linux GOARCH=%s go build ./cmd/sshvpn) and pass it with --upload-binary, or install sshvpn on the server",
		sys, machine, goarch, this, bin.goos, bin.goarch, goarch, goarch)
}

// parseDir splits Options.Dir into a path relative to the server's $HOME
// (relDir) or an absolute one (absDir).
func parseDir(dir string) (relDir, absDir string, err error) {
	if hasControl(dir) {
		return "", "", fmt.Errorf("upload: the directory %q has control characters", dir)
	}
	switch {
	case dir == "":
		return defaultDir, "", nil
	case dir == "~" || dir == "$HOME":
		return ".", "", nil
	case strings.HasPrefix(dir, "~/"):
		return path.Clean(dir[2:]), "", nil
	case strings.HasPrefix(dir, "$HOME/"):
		return path.Clean(dir[6:]), "", nil
	case strings.HasPrefix(dir, "~") || strings.HasPrefix(dir, "$"):
		return "", "", fmt.Errorf("upload: the directory %q: only ~/ and $HOME/ are expanded", dir)
	case strings.HasPrefix(dir, "/"):
		return "", path.Clean(dir), nil
	}
	return path.Clean(dir), "", nil
}

// sanitizeVersion makes v usable in a file name.
func sanitizeVersion(v string) string {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "sshvpn "))
	b := []byte(v)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > maxVersion {
		b = b[:maxVersion]
	}
	if len(b) == 0 {
		return "dev"
	}
	return string(b)
}

// newMarker returns a fresh prefix for the lines Ensure's scripts print,
// which a banner from the server's startup files cannot imitate by chance.
func newMarker() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	return "sshvpn-upload-" + hex.EncodeToString(b[:]), nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
