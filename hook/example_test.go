package hook_test

import (
	"fmt"
	"net/netip"

	"github.com/sshvpn/sshvpn/hook"
)

// The variables an up hook on the client sees, besides the process's own
// environment.
func ExampleEnv_Vars() {
	e := hook.Env{
		Side:      "local",
		Dev:       "tun0",
		Mode:      "tun",
		MTU:       1500,
		Addrs:     []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30"), netip.MustParsePrefix("fd73:7368:7670::1/64")},
		PeerAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/30"), netip.MustParsePrefix("fd73:7368:7670::2/64")},
		Routes:    []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")},
		Server:    "203.0.113.7",
	}
	for _, v := range e.Vars("up") {
		fmt.Println(v)
	}
	// Output:
	// SSHVPN_SIDE=local
	// SSHVPN_SCRIPT_TYPE=up
	// SSHVPN_DEV=tun0
	// SSHVPN_MODE=tun
	// SSHVPN_MTU=1500
	// SSHVPN_ADDRS=198.18.0.1/30 fd73:7368:7670::1/64
	// SSHVPN_PEER_ADDRS=198.18.0.2/30 fd73:7368:7670::2/64
	// SSHVPN_ROUTES=10.20.0.0/16
	// SSHVPN_SCRIPT_CONTEXT=init
	// SSHVPN_SERVER=203.0.113.7
}
