package registry_test

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/sshvpn/sshvpn/registry"
)

// A session records itself, others list it while it runs, and it removes
// its record when it ends.
func Example() {
	dir, _ := os.MkdirTemp("", "registry-example-")
	defer os.RemoveAll(dir)
	reg, err := registry.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	e, _ := reg.Add(registry.Record{Side: registry.SideRemote, Dev: "tun0",
		Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.77.2/30")}})
	recs, _ := reg.List()
	for _, r := range recs {
		fmt.Println(r.Side, r.Dev, r.Addrs, r.PID == os.Getpid())
	}
	e.Remove()
	recs, _ = reg.List()
	fmt.Println(len(recs), "after Remove")
	// Output:
	// remote tun0 [198.18.77.2/30] true
	// 0 after Remove
}
