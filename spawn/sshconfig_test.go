package spawn

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestResolveLikeSSH resolves every host named in the "# hosts:" line of
// each config in testdata/ssh_config and compares the result with what
// "ssh -G" prints for the same host: the client in this process must go
// where the user's ssh goes, as the user, with the same keys and host-key
// rules.
func TestResolveLikeSSH(t *testing.T) {
	requireSSH(t)
	files, _ := filepath.Glob("../testdata/ssh_config/*.conf")
	if len(files) == 0 {
		t.Fatal("no configs in testdata/ssh_config")
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, hosts, ok := strings.Cut(string(b), "# hosts:")
		if !ok {
			t.Fatalf("%s has no '# hosts:' line", file)
		}
		hosts, _, _ = strings.Cut(hosts, "\n")
		for _, dest := range strings.Fields(hosts) {
			t.Run(filepath.Base(file)+"/"+dest, func(t *testing.T) {
				got, err := ResolveSSHConfig(file, dest)
				if err != nil {
					t.Fatal(err)
				}
				want := sshG(t, file, dest)
				check := func(key, got string) {
					t.Helper()
					if w := strings.Join(want[key], " "); w != got {
						t.Errorf("%s: got %q, ssh -G says %q", key, got, w)
					}
				}
				check("hostname", got.HostName)
				check("user", got.User)
				check("port", strconv.Itoa(got.Port))
				check("identitiesonly", yesNo(got.IdentitiesOnly))
				check("serveraliveinterval", strconv.Itoa(int(got.ServerAliveInterval/time.Second)))
				check("serveralivecountmax", strconv.Itoa(got.ServerAliveCountMax))
				check("userknownhostsfile", strings.Join(got.UserKnownHostsFiles, " "))
				check("globalknownhostsfile", strings.Join(got.GlobalKnownHostsFiles, " "))
				check("hostkeyalias", got.HostKeyAlias)
				shkc := map[string]string{"yes": "true", "no": "false"}[got.StrictHostKeyChecking]
				if shkc == "" {
					shkc = got.StrictHostKeyChecking
				}
				check("stricthostkeychecking", shkc)
				ct := "none"
				if got.ConnectTimeout > 0 {
					ct = strconv.Itoa(int(got.ConnectTimeout / time.Second))
				}
				check("connecttimeout", ct)
				check("proxyjump", strings.Join(got.ProxyJump, ","))
				// ssh -G lists the default keys of its version (DSA, XMSS
				// too); configured ones must agree exactly.
				if !slices.Equal(got.IdentityFiles, DefaultIdentityFiles) && !slices.Equal(got.IdentityFiles, want["identityfile"]) {
					t.Errorf("identityfile: got %q, ssh -G says %q", got.IdentityFiles, want["identityfile"])
				}
			})
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// sshG runs "ssh -G -F file dest" and returns its keywords' values.
func sshG(t *testing.T, file, dest string) map[string][]string {
	t.Helper()
	args := []string{"-G", "-F", file}
	// ssh takes no host:port: its -p says the same.
	if u, h, p, _ := splitDestination(dest); p != "" {
		args = append(args, "-p", p)
		if dest = h; u != "" {
			dest = u + "@" + h
		}
	}
	out, err := exec.Command("ssh", append(args, dest)...).Output()
	if err != nil {
		t.Fatalf("ssh -G -F %s %s: %v", file, dest, err)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		m[k] = append(m[k], v)
	}
	if _, ok := m["proxyjump"]; !ok {
		m["proxyjump"] = []string{""}
	}
	if _, ok := m["hostkeyalias"]; !ok {
		m["hostkeyalias"] = []string{""}
	}
	return m
}

// requireSSH skips a test that runs OpenSSH's ssh where it is not
// installed, except in CI, where that is a failure.
func requireSSH(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("ssh is missing in CI (apt-get install openssh-client)")
	}
	t.Skip("ssh is not installed")
}
