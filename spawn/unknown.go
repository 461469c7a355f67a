package spawn

import "errors"

// ErrPeerUnknown is returned, wrapped, by SocketPeer when neither ssh nor its
// child processes hold an established TCP connection, as when a ProxyCommand
// relays the session some other way or ssh shares a ControlMaster's
// connection.
var ErrPeerUnknown = errors.New("the SSH server's address is unknown")
