//go:build !linux

package server

import (
	"errors"
	"net"
)

// checkPeer refuses every joiner: this system's peer credentials are not
// read here, and striping is Linux only (multi-queue tun devices).
func checkPeer(*net.UnixConn) error {
	return errors.New("striped sessions need Linux")
}
