package tunnel

import (
	"errors"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/spawn"
)

// Retryable reports whether dialing again may mend a connection that
// ended with err (nil: the server closed the tunnel); up says whether its
// tunnel came up. Once a tunnel was up, whatever ended the connection (the
// server's side giving up on a dead peer exits non-zero, say) may pass,
// unless the server said why it ended the session, or this side failed.
// Before that, a failure that another attempt cannot mend ends it:
// authentication, host keys, sshvpn missing on the server, the server's
// refusal, this side's own setup.
func Retryable(err error, up bool) bool {
	var (
		join     *JoinError
		remote   *RemoteError
		preamble *framing.PreambleError
		version  *framing.VersionError
		exit     *spawn.ExitError
		local    localError
		dead     *DeadPeerError
	)
	switch {
	case err == nil, errors.As(err, &dead), errors.As(err, &join):
		return true
	case errors.As(err, &remote), errors.As(err, &local), errors.Is(err, errLinkDead):
		return false
	case up:
		return true
	case errors.As(err, &preamble), errors.As(err, &version), errors.Is(err, errProtocol):
		return false
	case errors.As(err, &exit):
		return exit.Temporary()
	}
	return true // the connection was lost some other way
}
