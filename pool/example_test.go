package pool_test

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/sshvpn/sshvpn/pool"
)

func Example() {
	dir, _ := os.MkdirTemp("", "pool-example")
	defer os.RemoveAll(dir)
	p, err := pool.New(dir, []netip.Prefix{netip.MustParsePrefix("198.18.8.0/24"), netip.MustParsePrefix("fd00:8::/64")})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, _ := p.Acquire()
	b, _ := p.Acquire()
	fmt.Println("server:", a.Server)
	fmt.Println("first client:", a.Client)
	fmt.Println("second client:", b.Client)
	a.Release()
	c, _ := p.Acquire()
	fmt.Println("after release:", c.Client)
	// Output:
	// server: [198.18.8.1/24 fd00:8::1/64]
	// first client: [198.18.8.2/24 fd00:8::2/64]
	// second client: [198.18.8.3/24 fd00:8::3/64]
	// after release: [198.18.8.2/24 fd00:8::2/64]
}
