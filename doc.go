// Package sshvpn joins a transport (any reliable byte stream, such as the
// stdin and stdout of ssh) to a tun.Device: it runs the handshake that agrees
// on addresses, MTU and mode, then pumps packets both ways with keepalives
// until either side closes.
//
// RunClient is the side that started ssh; Serve is "sshvpn --remote", the
// side sshd started. The wire format is in package framing, devices are in
// package tun and the ssh transports in package spawn.
package sshvpn
