package nat

// Enable adds the rules of the session cfg describes and turns forwarding
// on, in the network namespace of the calling thread. Enabling a session
// again replaces its rules.
func Enable(cfg Config) (*Gateway, error) { return enableGateway(cfg) }

// Close removes the session's rules and its claim on the forwarding
// sysctls: the last session out puts the sysctls back and deletes the
// table. Closing twice is harmless.
func (g *Gateway) Close() error { return g.shutdown() }

// Cleanup removes what sessions whose processes are gone (kill -9, a crash)
// left behind in the calling thread's network namespace: their rules, and
// their claim on the forwarding sysctls, which go back to their old values
// if no live session needs them, and then their guards and nat.json entry.
// Enable and Close do the same in passing; sshvpn calls it at every session
// start, as it sweeps stale routes. With no nat.json in stateDir and no
// table, it does nothing, not even take the lock.
func Cleanup(stateDir string, logf func(string, ...any)) error { return cleanupState(stateDir, logf) }

// Forwarding reports whether this network namespace forwards IPv4 and IPv6
// ("ipv4", "ipv6"), as its sysctls say; a family it cannot read is left out.
func Forwarding() map[string]bool { return sysctlForwarding() }

// ForwardingFor is what the forwarding sysctls say as a session that is not
// a --nat session sees it, in the calling thread's network namespace, given the NAT state in
// stateDir: a family whose forwarding sshvpn turned on for its --nat
// sessions is guarded, and forwards nothing of this session's.
func ForwardingFor(stateDir string) map[string]bool { return guardedForwarding(stateDir) }
