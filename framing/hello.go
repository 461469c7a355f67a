package framing

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// Hello is the handshake message, carried as a JSON object in a Hello frame.
// Unknown fields are ignored, so later versions can add fields.
//
// In the client's Hello, Addrs and PeerAddrs are proposals. In the server's
// answer they are decisions: Addrs are the server's own tunnel addresses and
// PeerAddrs the ones the client must use.
type Hello struct {
	Role      string         `json:"role"`                 // "client" or "server"
	Software  string         `json:"software,omitempty"`   // e.g. "sshvpn 0.1.0", for diagnostics
	Mode      string         `json:"mode"`                 // "tun" or "tap"
	MTU       int            `json:"mtu,omitempty"`        // device MTU; 0 means no preference
	Addrs     []netip.Prefix `json:"addrs,omitempty"`      // the sender's tunnel addresses
	PeerAddrs []netip.Prefix `json:"peer_addrs,omitempty"` // the receiver's tunnel addresses
	Routes    []netip.Prefix `json:"routes,omitempty"`     // networks behind the sender, to be routed into the tunnel by the receiver
	Dev       string         `json:"dev,omitempty"`        // the sender's device name, for diagnostics
	WantDev   string         `json:"want_dev,omitempty"`   // the device name the client asks the server to use
	// Resume is the client's resume token: random, made once per run and
	// the same in every connection of it (MinResume to MaxResume bytes). A
	// server that still holds a session of the same token (whose
	// connection died, unnoticed yet) lets the new session take over.
	Resume string `json:"resume,omitempty"`
	// Offloads are what the sender's device accepted of the segmentation
	// and checksum offloads (the names of tun.Offload: "csum", "tso4",
	// "tso6", "uso4", "uso6"); empty when it offers none. Both sides
	// enable what both list, and only then send Offload frames.
	Offloads []string `json:"offloads,omitempty"`
	// MaxFrame is the largest frame payload the sender takes; 0 means
	// MaxPayload. Offload frames need MaxOffloadPayload from both.
	MaxFrame int `json:"max_frame,omitempty"`
	// Forward is, in the server's answer, whether it forwards packets
	// of each family ("ipv4", "ipv6"): a client that routes networks into
	// the tunnel warns when it does not. Absent: unknown.
	Forward map[string]bool `json:"forward,omitempty"`
	// Acks says that the sender acknowledges what it receives with Ack
	// frames; its peer may then pace what it sends by them.
	Acks bool `json:"acks,omitempty"`
	// Streams, in a client's Hello, asks to stripe the tunnel over this
	// many connections (--streams); a server that agrees answers with
	// Join, which the client's other connections present. Absent or 1:
	// one connection.
	Streams int `json:"streams,omitempty"`
	// Join, in a client's Hello, adds this connection to a striped
	// session as one more stream; in the server's answer to a Hello with
	// Streams, it names the session and its secret.
	Join *Join `json:"join,omitempty"`
	// Twice says that the sender drops the second copy of a ping or a
	// DNS datagram that reaches it over two streams of a striped
	// session; its peer may then send such packets over two streams,
	// so that one stream's stall does not hold them up.
	Twice bool `json:"twice,omitempty"`
}

// Join names a striped session and proves that a connection belongs to
// it: both are made by the server, at random, when the session begins.
type Join struct {
	Session string `json:"session"` // SessionLen hex digits
	Secret  string `json:"secret"`  // SecretLen hex digits: 256 bits
}

// The lengths of a Join's fields, and the most streams a session has.
const (
	SessionLen = 32
	SecretLen  = 64
	MaxStreams = 16
)

// Valid reports whether j's fields have their lengths and are hex.
func (j *Join) Valid() bool {
	return j != nil && len(j.Session) == SessionLen && len(j.Secret) == SecretLen && isHex(j.Session) && isHex(j.Secret)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MinResume and MaxResume bound the length of a resume token: at least 128
// bits of randomness, hex-encoded.
const (
	MinResume = 32
	MaxResume = 64
)

// WriteHello buffers a Hello frame.
func (w *Writer) WriteHello(h *Hello) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("framing: encoding hello: %w", err)
	}
	return w.WriteFrame(TypeHello, b)
}

// ParseHello decodes the payload of a Hello frame.
func ParseHello(payload []byte) (*Hello, error) {
	var h Hello
	if err := json.Unmarshal(payload, &h); err != nil {
		return nil, fmt.Errorf("framing: malformed hello: %v", err)
	}
	return &h, nil
}
