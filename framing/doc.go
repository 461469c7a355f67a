// Package framing is the sshvpn wire format: how packets and control messages
// travel over one reliable byte stream (the stdin/stdout of an ssh session, or
// an SSH channel). It knows nothing of devices or addresses beyond the
// handshake message.
//
// # Stream
//
// Each side starts by writing the preamble, the ASCII line
//
//	"SSHVPN/" VERSION "\n"
//
// where VERSION is the decimal protocol version the writer speaks (currently
// 1). A reader that sees anything else first (a login banner, "command not
// found", a shell prompt) stops and reports the bytes it got, quoted, in a
// *PreambleError. Nothing is skipped: a stream that is not clean is not
// trusted to carry packets.
//
// After the preamble the stream is a sequence of frames:
//
//	+--------+------------------------+-----------------+
//	| type   | length (24-bit, big    | payload         |
//	| 1 byte | endian) 3 bytes        | length bytes    |
//	+--------+------------------------+-----------------+
//
// Length counts the payload only and is at most MaxPayload (65536); a longer
// length is a protocol error, never an allocation. Frame types:
//
//	1 Hello  handshake, a JSON object (see Hello); sent once by each side
//	2 Data   one IP packet (tun mode) or Ethernet frame (tap mode)
//	3 Ping   keepalive request; payload (at most 64 bytes) is echoed back
//	4 Pong   keepalive reply carrying the Ping's payload
//	5 Error  UTF-8 text explaining why the sender is giving up; the
//	         sender closes the stream after it
//	6 Close  orderly shutdown; optional UTF-8 reason; the sender closes
//	         its side after it
//	7 Offload  a virtio_net_hdr and the packet behind it (see Offloads);
//	         at most MaxOffloadPayload (65546) bytes
//	8 Ack    the count of Data and Offload payload bytes the sender has
//	         received so far, 8 bytes big endian (see Pacing)
//	9 Copy   a second copy of a small Data or Offload frame sent over
//	         another connection of a striped session: the original's type
//	         byte, then its payload; at most MaxCopyPayload (2048) bytes
//	         (see Striping)
//
// Type 0 is invalid. Receivers ignore types they do not know (numbers above 9),
// so later versions can add frames that older peers skip.
//
// # Pacing
//
// A side whose Hello says "acks" sends Ack frames as it receives data,
// one per 64 KiB. Its peer may then
// keep what is in flight (sent, and not yet acknowledged) near what the
// path holds, so that a queue forms in the sender, which manages it,
// rather than in the pipes and buffers between the two. An older peer's
// Hello has no "acks"; it gets no Ack frames, would skip them, and is
// not paced.
//
// # Striping
//
// A client that stripes a tunnel over several connections asks for them
// in its first connection's Hello ("streams": N). A server that agrees
// answers with "join": a session id and a 256-bit secret, which each
// further connection's Hello presents as its own "join"; such a
// connection carries the same tunnel, and the handshake's addresses are
// the session's. A server that does not stripe answers without "join",
// and the tunnel has one connection. A side whose Hello says "twice"
// takes Copy frames: of a packet that reaches it twice, as a Data or
// Offload frame over one connection and as a Copy frame over another,
// within a second, it writes the first and drops the second. Its peer
// may then send pings and small DNS datagrams twice, so that a stall of
// one connection does not hold them up.
//
// # Offloads
//
// Linux can hand a tun device's reader a GSO super-packet (up to 64 KiB of
// TCP or UDP, to be cut into MTU-sized segments) or a packet whose
// checksum is still to be completed, described by a virtio_net_hdr in
// front of it, and takes the same when written. Two sshvpn ends pass them
// through unchanged: the segmentation happens, if at all, in the
// receiving kernel. Each Hello lists the offloads its sender's device
// accepted (Hello.Offloads) and the largest frame it takes
// (Hello.MaxFrame). When both list "csum" and both take MaxOffloadPayload,
// each side enables on its device the offloads both list, and may then
// send Offload frames: the payload is the 10-byte header, in Linux's
// layout (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset;
// little endian), then the IP packet. A receiver checks the header against
// the agreement before its kernel sees it. Without the agreement, or with
// an older peer (whose Hello has no offloads), only Data frames of at most
// MaxPayload bytes are sent: an Offload frame would be a protocol error,
// and an older reader would call a frame over 65536 bytes corrupt.
//
// # Handshake
//
// The client (the side that started ssh) writes its preamble and a Hello
// proposing the tunnel: its own addresses, the peer's addresses, mode and MTU.
// The server writes its preamble at once, reads the client's Hello, applies its
// own policy, and answers with a Hello that states what was decided (its
// addresses as Addrs, the client's as PeerAddrs) or with an Error frame. The
// client configures its device from the server's answer; then both sides send
// Data, Ping, Pong and Close frames in any order.
//
// # Batching
//
// Writer buffers frames and writes them with one system call on Flush, so a
// sender that has several packets queued flushes once after the last. Reader
// reads through a buffer at least one maximum frame large and hands out
// payloads that alias that buffer, so the data path allocates nothing.
package framing
