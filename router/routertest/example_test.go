package routertest_test

import (
	"fmt"
	"net/netip"

	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/router/routertest"
)

// A fake Router records what a link asks of it: code that configures
// interfaces can be tested without touching the machine's network.
func Example() {
	r := &routertest.Router{}
	var rt router.Router = r
	rt.Set(router.Config{MTU: 1400, Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30")},
		Routes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	rt.Close()
	for _, c := range r.Configs() {
		fmt.Println("set", c.Addrs, "routes", c.Routes, "mtu", c.MTU)
	}
	fmt.Println("closed", r.Closed())
	// Output:
	// set [198.18.0.1/30] routes [198.51.100.0/24] mtu 1400
	// closed 1
}
