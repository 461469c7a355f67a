// Package sshvpn is a lightweight VPN over SSH: a tun (or tap) device on
// each end, and the packets between them carried as length-prefixed frames
// over an SSH connection, either the stdin and stdout of a spawned ssh
// running "sshvpn --remote" under sshd, or a channel of an in-process SSH
// client. This package holds only this overview; the code is in:
//
//   - framing: the wire format (preamble, Hello, frames);
//   - tun: the devices, and tun/tuntest, an in-memory one;
//   - spawn: the transports (spawned ssh, stdio, in-process SSH);
//   - policy: the pure decisions of the handshake (the grant, the
//     client's check of the answer, address pairs, MTU, rate limits);
//   - tunnel: the engine, a Link that owns the device and outlives
//     connections, the per-connection pump and keepalive, the Hello
//     exchange of both roles;
//   - stack: the host's configuration, in order (routes, NAT, DNS, hooks,
//     the session's record);
//   - client and server: a run of each side;
//   - router, nat, dns, hook, pool, registry, record, upload, notify: the
//     parts those use;
//   - cmd/sshvpn: the command line.
package sshvpn
