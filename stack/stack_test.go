package stack

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn/policy"
)

// fake is a stage that writes what happens to it in a shared log and fails
// its Up when told to.
type fake struct {
	name string
	log  *[]string
	fail error
}

func (f *fake) Up(c *Conf) error {
	if f.fail != nil {
		*f.log = append(*f.log, "up "+f.name+" failed")
		return f.fail
	}
	*f.log = append(*f.log, "up "+f.name)
	return nil
}

func (f *fake) Down() error { *f.log = append(*f.log, "down "+f.name); return nil }

func (f *fake) Detached() { *f.log = append(*f.log, "detached "+f.name) }

func stages(log *[]string, names ...string) []Stage {
	var out []Stage
	for _, n := range names {
		out = append(out, &fake{name: n, log: log})
	}
	return out
}

var tunnel = policy.Tunnel{MTU: 1400, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30")}}

// TestOrder: stages come up in order and go down in reverse; a reconnect
// brings each up again without taking any down; Down takes each down once.
func TestOrder(t *testing.T) {
	var log []string
	s := New("tun0", nil, stages(&log, "routes", "nat", "dns", "hooks", "record")...)
	if err := s.Up(tunnel, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	s.Detached()
	if err := s.Up(tunnel, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if err := s.Down(); err != nil { // nothing is up any more
		t.Fatal(err)
	}
	want := []string{
		"up routes", "up nat", "up dns", "up hooks", "up record",
		"detached routes", "detached nat", "detached dns", "detached hooks", "detached record",
		"up routes", "up nat", "up dns", "up hooks", "up record",
		"down record", "down hooks", "down dns", "down nat", "down routes",
	}
	if !slices.Equal(log, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

// TestHalfFailedUp: when a stage fails, the stages that came up before it
// in the same call go down again, in reverse, and the error is returned;
// the failed stage and those after it are never taken down.
func TestHalfFailedUp(t *testing.T) {
	var log []string
	st := stages(&log, "routes", "nat", "dns", "hooks")
	broken := errors.New("dns is broken")
	st[2].(*fake).fail = broken
	s := New("tun0", nil, st...)
	if err := s.Up(tunnel, netip.Addr{}); !errors.Is(err, broken) {
		t.Fatalf("Up: %v, want %v", err, broken)
	}
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	want := []string{"up routes", "up nat", "up dns failed", "down nat", "down routes"}
	if !slices.Equal(log, want) {
		t.Errorf("got %q, want %q", log, want)
	}
}

// TestReconnectFails: a reconnect whose Up fails halfway leaves the stages
// of the earlier connection up (Down takes them down at the end), and
// takes down only what it brought up itself.
func TestReconnectFails(t *testing.T) {
	var log []string
	st := stages(&log, "routes", "nat", "hooks")
	s := New("tun0", nil, st...)
	// First connection: "hooks" fails, so routes and nat go down again.
	st[2].(*fake).fail = errors.New("hook failed")
	if err := s.Up(tunnel, netip.Addr{}); err == nil {
		t.Fatal("Up succeeded")
	}
	// Second: everything comes up; third: hooks fail, nothing goes down.
	st[2].(*fake).fail = nil
	if err := s.Up(tunnel, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	st[2].(*fake).fail = errors.New("hook failed again")
	if err := s.Up(tunnel, netip.Addr{}); err == nil {
		t.Fatal("Up succeeded")
	}
	s.Down()
	want := []string{
		"up routes", "up nat", "up hooks failed", "down nat", "down routes",
		"up routes", "up nat", "up hooks",
		"up routes", "up nat", "up hooks failed",
		"down hooks", "down nat", "down routes",
	}
	if !slices.Equal(log, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

// TestConfFlows: what a stage adds to the Conf reaches the stages after
// it (the routes stage's networks, for the hooks' environment).
func TestConfFlows(t *testing.T) {
	var seen []netip.Prefix
	routed := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1")}
	s := New("tun0", nil,
		Func{OnUp: func(c *Conf) error { c.Routes = routed; return nil }},
		Func{OnUp: func(c *Conf) error {
			if c.Dev != "tun0" || c.Tunnel.MTU != 1400 {
				t.Errorf("conf %+v", c)
			}
			seen = c.Routes
			return nil
		}})
	if err := s.Up(tunnel, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, routed) {
		t.Errorf("the later stage saw routes %v, want %v", seen, routed)
	}
}
