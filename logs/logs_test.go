package logs

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn/tunnel"
)

// TestSplitHandler: records marked for the admin, and loggers made for the
// admin, never reach the client's stream; the identity never does either;
// the admin's handler gets everything.
func TestSplitHandler(t *testing.T) {
	var client, admin bytes.Buffer
	h := &splitHandler{client: textHandler(&client, 0), admin: textHandler(&admin, 0)}
	log := slog.New(h).With("user", "alice")
	log.Info("tunnel up", "dev", "tun0")
	log.Warn("dropping packets", "src", "198.18.5.5", tunnel.AdminOnly)
	log.With(tunnel.AdminOnly).Info("hook output", "line", "secret")
	c, a := client.String(), admin.String()
	if !strings.Contains(c, "tunnel up") || strings.Contains(c, "dropping") || strings.Contains(c, "hook output") {
		t.Errorf("client's stream:\n%s", c)
	}
	for _, want := range []string{"tunnel up", "dropping packets", "hook output", "user=alice"} {
		if !strings.Contains(a, want) {
			t.Errorf("admin's stream lacks %q:\n%s", want, a)
		}
	}
	if strings.Contains(a, tunnel.AdminOnlyKey) || strings.Contains(c, tunnel.AdminOnlyKey) {
		t.Errorf("the marker is printed:\n%s\n%s", c, a)
	}
}

// TestRelay: the server's logfmt lines on ssh's stderr are shown once, in
// the client's format, marked as the server's and at the client's level;
// ssh's own lines pass through as they are; control characters from the
// server are defused.
func TestRelay(t *testing.T) {
	var out, raw strings.Builder
	r := &Relay{Log: New(&out, false, false, Text), Raw: &raw}
	io.WriteString(r, `level=INFO msg="tunnel up" side=remote dev=tun0 local="[198.18.0.2/30 fd00::2/64]" mtu=1500`+"\n")
	io.WriteString(r, "level=DEBUG msg=hidden side=remote\nWarning: Permanently added 'server' to the list of known hosts.\n")
	io.WriteString(r, `level=WARN msg="evil\x1b[2J" side=remote note="a b"`+"\n")
	io.WriteString(r, `level=ERROR msg="ok\nerror: host key CHANGED" side=remote side=local`+"\n")
	io.WriteString(r, `level=ERROR msg="forged" x=side=remote`+"\n")
	// ssh's own line endings are "\r\n": no stray '?' for the '\r'.
	io.WriteString(r, "root@192.0.2.2: Permission denied (publickey).\r\n")
	io.WriteString(r, `level=INFO msg=bye side=remote`+"\r\n")
	io.WriteString(r, "a\rb")
	r.Flush()
	want := "server: tunnel up dev=tun0 local=198.18.0.2/30,fd00::2/64 mtu=1500\nserver: warning: evil?[2J note=\"a b\"\nserver: bye\n"
	if out.String() != want {
		t.Errorf("relayed:\n%q\nwant\n%q", out.String(), want)
	}
	if raw.String() != "Warning: Permanently added 'server' to the list of known hosts.\n"+
		"level=ERROR msg=\"ok\\nerror: host key CHANGED\" side=remote side=local\n"+
		"level=ERROR msg=\"forged\" x=side=remote\n"+
		"root@192.0.2.2: Permission denied (publickey).\n"+
		"a?b\n" {
		t.Errorf("passed through: %q", raw.String())
	}
}

// FuzzRelay: whatever the server writes on stderr, the relay does not
// panic, and writes only printable text for its lines.
func FuzzRelay(f *testing.F) {
	f.Add([]byte(`level=INFO msg="tunnel up" side=remote dev=tun0` + "\n"))
	f.Add([]byte("level=ERROR side=remote msg=\"\\x00\" k=\"unterminated\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out strings.Builder
		r := &Relay{Log: New(&out, true, false, Text), Raw: io.Discard}
		r.Write(b)
		r.Flush()
		for _, c := range out.String() {
			if c < 0x20 && c != '\n' && c != '\t' {
				t.Fatalf("control character %q in %q", c, out.String())
			}
		}
	})
}

func TestClientAsks(t *testing.T) {
	if v, q := ClientAsks("sshvpn --remote -v"); !v || q {
		t.Error("-v")
	}
	if v, q := ClientAsks("sshvpn --remote --quiet"); v || !q {
		t.Error("--quiet")
	}
	if v, q := ClientAsks("sshvpn --remote --dev=-v"); v || q {
		t.Error("a flag value")
	}
}
