package spawn

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestParseJumpHost(t *testing.T) {
	tests := []struct {
		in, user, host, port string
	}{
		{"jump", "", "jump", ""},
		{"jump:2200", "", "jump", "2200"},
		{"u@jump", "u", "jump", ""},
		{"u@jump:2200", "u", "jump", "2200"},
		{"u@x@jump:22", "u@x", "jump", "22"},
		{"[2001:db8::1]", "", "2001:db8::1", ""},
		{"[2001:db8::1]:2200", "", "2001:db8::1", "2200"},
		{"u@[2001:db8::1]:2200", "u", "2001:db8::1", "2200"},
		{"2001:db8::1", "", "2001:db8::1", ""},
		{"192.0.2.1:2200", "", "192.0.2.1", "2200"},
		{"ssh://jump", "", "jump", ""},
		{"ssh://u@jump:2200", "u", "jump", "2200"},
		{"ssh://u@jump:2200/", "u", "jump", "2200"},
		{"ssh://u@[::1]:2200", "u", "::1", "2200"},
	}
	for _, tt := range tests {
		user, host, port, err := parseJumpHost(tt.in)
		if err != nil || user != tt.user || host != tt.host || port != tt.port {
			t.Errorf("parseJumpHost(%q) = %q, %q, %q, %v; want %q, %q, %q", tt.in, user, host, port, err, tt.user, tt.host, tt.port)
		}
	}
	for _, in := range []string{"", "u@", "@jump", ":22", "jump:", "jump:x", "jump:0", "jump:65536", "[::1", "[::1]x",
		"[::1]:", "a:b:c", "ssh://2001:db8::1", "-oProxyCommand=x", "u@-jump"} {
		if user, host, port, err := parseJumpHost(in); err == nil {
			t.Errorf("parseJumpHost(%q) = %q, %q, %q; want an error", in, user, host, port)
		}
	}
}

func TestJumpOptions(t *testing.T) {
	tests := []struct{ in, want []string }{
		{nil, nil},
		{[]string{"-F", "cfg", "-i", "key", "-C"}, []string{"-F", "cfg", "-i", "key", "-C"}},
		{[]string{"-J", "x", "-Jy", "-o", "ProxyJump=z", "-oProxyJump=w", "-o", "proxyjump q", "-o", " ProxyJump\tr", "-oPROXYJUMP = s"}, nil},
		{[]string{"-vJr", "-CJ", "x", "-Cv"}, []string{"-v", "-C", "-Cv"}},
		{[]string{"-p", "2222", "-p2222", "-l", "me", "-lme", "-4", "-6", "-4C"}, []string{"-C"}},
		{[]string{"-oPort=3", "-o", "User me", "-o", "HostName=10.0.0.1", "-o", "AddressFamily=inet"}, nil},
		{[]string{"-oServerAliveInterval=5", "-o", "ForwardAgent=no", "-vi", "key", "-ikey"},
			[]string{"-o", "ServerAliveInterval=5", "-o", "ForwardAgent=no", "-v", "-i", "key", "-i", "key"}},
		{[]string{"-F/etc/ssh/alt", "-o", "Hostname", "-Fx"}, []string{"-F", "/etc/ssh/alt", "-F", "x"}},
		{[]string{"-C", "-F"}, []string{"-C", "-F"}}, // ssh will complain of the missing value
		{[]string{"-e", "-J"}, []string{"-e", "-J"}}, // -J is -e's argument
		{[]string{"--", "-J", "x"}, []string{"--", "-J", "x"}},
		{[]string{"-", "x"}, []string{"-", "x"}},
	}
	for _, tt := range tests {
		if got := jumpOptions(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("jumpOptions(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeSSHG writes a fake ssh that logs each argv (one line, words separated
// by \x1f) and answers "-G HOST" with configs[HOST], failing for other hosts
// and, as real ssh may ("jumphost loop"), when it is asked about any host but
// srv with -J or ProxyJump.
func fakeSSHG(t *testing.T, configs map[string][]string) (path string, calls func() [][]string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "argv.log")
	var b strings.Builder
	b.WriteString(`printf '%s\037' "$@" >>` + QuoteWord(log) + "\nprintf '\\n' >>" + QuoteWord(log) + "\n")
	b.WriteString("for last; do :; done\n")
	b.WriteString("[ \"$last\" = srv ] || for a; do case \"$a\" in -J*|-*[!-]J*|*[Pp][Rr][Oo][Xx][Yy][Jj][Uu][Mm][Pp]*) echo 'jumphost loop' >&2; exit 255;; esac; done\n")
	b.WriteString("case \"$last\" in\n")
	hosts := make([]string, 0, len(configs))
	for h := range configs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		b.WriteString(QuoteWord(h) + ") printf '%s\\n'")
		for _, l := range configs[h] {
			b.WriteString(" " + QuoteWord(l))
		}
		b.WriteString(";;\n")
	}
	b.WriteString("*) echo \"ssh: Could not resolve hostname $last\" >&2; exit 255;;\nesac\n")
	path = fakeSSH(t, b.String())
	return path, func() [][]string {
		data, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var calls [][]string
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			calls = append(calls, strings.Split(strings.TrimSuffix(line, "\x1f"), "\x1f"))
		}
		return calls
	}
}

// fakeLookup answers from names, recording its queries.
type fakeLookup struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	queries []string
}

func (f *fakeLookup) lookup(_ context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, network+" "+host)
	var out []netip.Addr
	for _, a := range f.names[host] {
		if network == "ip" || (network == "ip4") == a.Unmap().Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestServerAddr(t *testing.T) {
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	names := map[string][]netip.Addr{
		"dual.example":   addrs("2001:db8::7", "192.0.2.7"),
		"mapped.example": addrs("::ffff:192.0.2.9"),
		"jumphost":       addrs("198.51.100.1", "2001:db8::1"),
		"v6only.example": addrs("2001:db8::6"),
	}
	base := []string{"hostname dest.example", "port 22", "addressfamily any"}
	tests := []struct {
		name    string
		opts    []string
		dest    string
		configs map[string][]string
		want    string
		calls   [][]string // argv after the ssh command
		queries []string
		err     string
	}{
		{name: "literal", dest: "me@srv", opts: []string{"-p", "2222"},
			configs: map[string][]string{"me@srv": {"user me", "hostname 192.0.2.1", "port 2222"}},
			want:    "192.0.2.1", calls: [][]string{{"-p", "2222", "-G", "me@srv"}}},
		{name: "literal v6", dest: "srv", configs: map[string][]string{"srv": {"hostname [2001:db8::2]"}}, want: "2001:db8::2"},
		{name: "literal mapped", dest: "srv", configs: map[string][]string{"srv": {"hostname ::ffff:192.0.2.3"}}, want: "192.0.2.3"},
		{name: "any", dest: "srv", configs: map[string][]string{"srv": {"hostname dual.example", "addressfamily any"}},
			want: "2001:db8::7", queries: []string{"ip dual.example"}},
		{name: "inet", dest: "srv", opts: []string{"-4"}, configs: map[string][]string{"srv": {"hostname dual.example", "addressfamily inet"}},
			want: "192.0.2.7", queries: []string{"ip4 dual.example"}},
		{name: "inet6", dest: "srv", configs: map[string][]string{"srv": {"hostname dual.example", "addressfamily inet6"}},
			want: "2001:db8::7", queries: []string{"ip6 dual.example"}},
		{name: "inet, none", dest: "srv", configs: map[string][]string{"srv": {"hostname v6only.example", "addressfamily inet"}},
			err: "resolving v6only.example (ip4)"},
		{name: "mapped", dest: "srv", configs: map[string][]string{"srv": {"hostname mapped.example"}}, want: "192.0.2.9"},
		{name: "jump user port", dest: "srv", opts: []string{"-F", "cfg", "-p", "2222", "-J", "u@jumphost:2200", "-C"},
			configs: map[string][]string{
				"srv":      append(base, "proxyjump u@jumphost:2200"),
				"jumphost": {"hostname jumphost", "port 2200", "addressfamily inet"},
			},
			want: "198.51.100.1",
			calls: [][]string{
				{"-F", "cfg", "-p", "2222", "-J", "u@jumphost:2200", "-C", "-G", "srv"},
				{"-F", "cfg", "-C", "-l", "u", "-p", "2200", "-G", "jumphost"},
			},
			queries: []string{"ip4 jumphost"}},
		{name: "jump v6", dest: "srv", opts: []string{"-oProxyJump=[2001:db8::5]:2200"},
			configs: map[string][]string{
				"srv":         append(base, "proxyjump [2001:db8::5]:2200"),
				"2001:db8::5": {"hostname 2001:db8::5", "port 2200"},
			},
			want: "2001:db8::5",
			calls: [][]string{
				{"-oProxyJump=[2001:db8::5]:2200", "-G", "srv"},
				{"-p", "2200", "-G", "2001:db8::5"},
			}},
		{name: "jump uri, two hops", dest: "srv", opts: []string{"-vJ", "ssh://u@alias:2201,second"},
			configs: map[string][]string{
				"srv":   append(base, "proxyjump ssh://u@alias:2201,second"),
				"alias": {"hostname jumphost", "addressfamily inet6"},
			},
			want: "2001:db8::1",
			calls: [][]string{
				{"-vJ", "ssh://u@alias:2201,second", "-G", "srv"},
				{"-v", "-l", "u", "-p", "2201", "-G", "alias"},
			},
			queries: []string{"ip6 jumphost"}},
		{name: "jump through configured jump", dest: "srv", opts: []string{"-o", "proxyjump first"},
			configs: map[string][]string{
				"srv":    append(base, "proxyjump first"),
				"first":  {"hostname first.example", "proxyjump u@second:2022"},
				"second": {"hostname 192.0.2.22", "port 2022"},
			},
			want: "192.0.2.22",
			calls: [][]string{
				{"-o", "proxyjump first", "-G", "srv"},
				{"-G", "first"},
				{"-l", "u", "-p", "2022", "-G", "second"},
			}},
		{name: "proxycommand", dest: "srv", configs: map[string][]string{"srv": append(base, "proxycommand nc %h %p")},
			err: "ProxyCommand"},
		{name: "loop", dest: "srv", configs: map[string][]string{"srv": append(base, "proxyjump srv")}, err: "chain too long"},
		{name: "bad jump", dest: "srv", configs: map[string][]string{"srv": append(base, "proxyjump u@[::1")}, err: "missing ']'"},
		{name: "ssh fails", dest: "srv", configs: map[string][]string{}, err: "Could not resolve hostname srv"},
		{name: "no hostname", dest: "srv", configs: map[string][]string{"srv": {"port 22"}}, err: "printed no hostname"},
		{name: "option destination", dest: "-oProxyCommand=x", err: "starts with '-'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path, calls := fakeSSHG(t, tt.configs)
			fl := &fakeLookup{names: names}
			o := Options{SSH: append([]string{path}, tt.opts...), Destination: tt.dest}
			var got netip.Addr
			var err error
			for i := 0; ; i++ { // ETXTBSY, as in start
				got, err = o.serverAddr(context.Background(), fl.lookup)
				if err == nil || !strings.Contains(err.Error(), "text file busy") || i == 50 {
					break
				}
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ServerAddr = %v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tt.want) {
				t.Fatalf("ServerAddr = %v, %v; want %v", got, err, tt.want)
			}
			if tt.calls != nil {
				if c := calls(); !reflect.DeepEqual(c, tt.calls) {
					t.Errorf("ssh was run with\n%q\nwant\n%q", c, tt.calls)
				}
			}
			if tt.queries != nil && !reflect.DeepEqual(fl.queries, tt.queries) {
				t.Errorf("lookups %q, want %q", fl.queries, tt.queries)
			}
		})
	}
}

// TestServerAddrRealSSH asks the installed ssh, ignoring the user's
// configuration.
func TestServerAddrRealSSH(t *testing.T) {
	t.Parallel()
	requireSSH(t)
	tests := []struct {
		opts []string
		want string
	}{
		{[]string{"-o", "HostName=192.0.2.50"}, "192.0.2.50"},
		// Without dropping -J and -p on the second call, ssh reports a
		// jumphost loop.
		{[]string{"-p", "2200", "-J", "u@192.0.2.51:2200"}, "192.0.2.51"},
		{[]string{"-p", "2200", "-o", "HostName=192.0.2.99", "-oProxyJump=u@[2001:db8::52]:2200"}, "2001:db8::52"},
		{[]string{"-J", "192.0.2.53,192.0.2.54"}, "192.0.2.53"},
		{[]string{"-4", "-o", "HostName=localhost"}, "127.0.0.1"},
	}
	for _, tt := range tests {
		o := Options{SSH: append([]string{"ssh", "-F", "/dev/null"}, tt.opts...), Destination: "dest.invalid"}
		got, err := o.ServerAddr(context.Background())
		if err != nil || got != netip.MustParseAddr(tt.want) {
			t.Errorf("ServerAddr(%q) = %v, %v; want %v", o.SSH, got, err, tt.want)
		}
	}
}
