package framing

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestHelloRoundTrip(t *testing.T) {
	pp := netip.MustParsePrefix
	tests := []struct {
		name string
		h    Hello
	}{
		{"minimal", Hello{Role: "client", Mode: "tun"}},
		{"client v4", Hello{
			Role: "client", Software: "sshvpn 0.1.0", Mode: "tun", MTU: 1400,
			Addrs:     []netip.Prefix{pp("10.99.0.2/30")},
			PeerAddrs: []netip.Prefix{pp("10.99.0.1/30")},
			Dev:       "sshvpn0",
		}},
		{"server dual stack", Hello{
			Role: "server", Software: "sshvpn 0.1.0", Mode: "tap", MTU: 9000,
			Addrs:     []netip.Prefix{pp("10.99.0.1/24"), pp("fd00:5348::1/64")},
			PeerAddrs: []netip.Prefix{pp("10.99.0.2/24"), pp("fd00:5348::2/64")},
			Routes:    []netip.Prefix{pp("192.168.0.0/16"), pp("0.0.0.0/0"), pp("::/0"), pp("2001:db8::/32")},
			Dev:       "tap7",
		}},
		{"v6 only with zone-free link local", Hello{
			Role: "client", Mode: "tun",
			Addrs: []netip.Prefix{pp("fe80::1/64"), pp("2001:db8::1/128")},
		}},
		{"unicode diagnostics", Hello{Role: "server", Mode: "tun", Software: "sshvpn ☃ \"quoted\" \\ </script>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			if err := w.WriteHello(&tt.h); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			typ, p, err := NewReader(&buf).ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if typ != TypeHello {
				t.Fatalf("frame type %v, want hello", typ)
			}
			got, err := ParseHello(p)
			if err != nil {
				t.Fatalf("ParseHello(%s): %v", p, err)
			}
			if !reflect.DeepEqual(*got, tt.h) {
				t.Errorf("round trip:\n got %+v\nwant %+v\njson %s", *got, tt.h, p)
			}
		})
	}
}

func TestHelloJSON(t *testing.T) {
	// The wire names are part of the protocol.
	var buf bytes.Buffer
	w := NewWriter(&buf)
	h := &Hello{
		Role: "client", Software: "s", Mode: "tun", MTU: 1500,
		Addrs:     []netip.Prefix{netip.MustParsePrefix("10.0.0.2/30")},
		PeerAddrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/30")},
		Routes:    []netip.Prefix{netip.MustParsePrefix("fd00::/8")},
		Dev:       "d",
	}
	if err := w.WriteHello(h); err != nil {
		t.Fatal(err)
	}
	got := string(buf.Bytes()) // still buffered; Flush not needed to inspect
	if got != "" {
		t.Fatalf("WriteHello wrote before Flush: %q", got)
	}
	w.Flush()
	want := `{"role":"client","software":"s","mode":"tun","mtu":1500,"addrs":["10.0.0.2/30"],"peer_addrs":["10.0.0.1/30"],"routes":["fd00::/8"],"dev":"d"}`
	if p := buf.Bytes()[HeaderLen:]; string(p) != want {
		t.Errorf("hello JSON\n got %s\nwant %s", p, want)
	}
	// Optional fields are omitted when empty.
	buf.Reset()
	w.WriteHello(&Hello{Role: "server", Mode: "tap"})
	w.Flush()
	if p := buf.Bytes()[HeaderLen:]; string(p) != `{"role":"server","mode":"tap"}` {
		t.Errorf("minimal hello JSON %s", p)
	}
}

func TestParseHello(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    *Hello // nil: want an error
	}{
		{"unknown fields ignored",
			`{"role":"server","mode":"tun","mtu":1380,"future":{"x":[1,2,3]},"compress":"zstd","addrs":["10.1.0.1/24"]}`,
			&Hello{Role: "server", Mode: "tun", MTU: 1380, Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}}},
		{"empty object", `{}`, &Hello{}},
		{"v6 prefixes", `{"peer_addrs":["fd00::2/64"],"routes":["::/0"]}`,
			&Hello{PeerAddrs: []netip.Prefix{netip.MustParsePrefix("fd00::2/64")}, Routes: []netip.Prefix{netip.MustParsePrefix("::/0")}}},
		{"empty payload", ``, nil},
		{"not JSON", `hello`, nil},
		{"truncated", `{"role":"client"`, nil},
		{"array", `[1,2]`, nil},
		{"wrong type", `{"mtu":"big"}`, nil},
		{"bad prefix", `{"addrs":["10.0.0.300/24"]}`, nil},
		{"address without length", `{"addrs":["10.0.0.1"]}`, nil},
		{"trailing garbage", `{"role":"client"} x`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHello([]byte(tt.payload))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseHello(%q) = %+v, want an error", tt.payload, got)
				}
				if got != nil {
					t.Errorf("ParseHello(%q) returned %+v with its error", tt.payload, got)
				}
				if !strings.HasPrefix(err.Error(), "framing:") {
					t.Errorf("error %q does not begin with \"framing:\"", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHello(%q): %v", tt.payload, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseHello(%q)\n got %+v\nwant %+v", tt.payload, got, tt.want)
			}
		})
	}
}

func TestWriteHelloTooLarge(t *testing.T) {
	var routes []netip.Prefix
	for i := range 1000 {
		routes = append(routes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	h := &Hello{Role: "client", Mode: "tun", Routes: routes}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	err := w.WriteHello(h)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("WriteHello of a big hello: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "limit 8192") {
		t.Errorf("error %q does not name the limit", err)
	}
	if w.Buffered() != 0 {
		t.Errorf("rejected hello left %d bytes buffered", w.Buffered())
	}

	// Just under the cap is fine, and reads back.
	h = &Hello{Role: "client", Mode: "tun"}
	base := len(`{"role":"client","software":"","mode":"tun"}`)
	h.Software = strings.Repeat("s", maxTextPayload-base)
	if err := w.WriteHello(h); err != nil {
		t.Fatalf("hello of exactly %d bytes: %v", maxTextPayload, err)
	}
	if w.Buffered() != HeaderLen+maxTextPayload {
		t.Fatalf("buffered %d, want %d", w.Buffered(), HeaderLen+maxTextPayload)
	}
	h.Software += "s"
	if err := w.WriteHello(h); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("hello of %d bytes: %v, want ErrTooLarge", maxTextPayload+1, err)
	}
	w.Flush()
	_, p, err := NewReader(&buf).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseHello(p)
	if err != nil || got.Software != h.Software[1:] {
		t.Fatalf("ParseHello of the maximal hello: %v", err)
	}
}

func TestHelloZeroPrefix(t *testing.T) {
	// A zero Prefix encodes as "" and decodes back to the zero Prefix; a
	// Hello with one still encodes.
	var buf bytes.Buffer
	w := NewWriter(&buf)
	h := Hello{Role: "client", Mode: "tun", Addrs: []netip.Prefix{{}}}
	if err := w.WriteHello(&h); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got, err := ParseHello(buf.Bytes()[HeaderLen:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, h) {
		t.Errorf("got %+v, want %+v", *got, h)
	}
}
