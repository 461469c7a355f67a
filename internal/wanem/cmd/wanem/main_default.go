//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "wanem: the lab's link emulator needs Linux (tun devices and network namespaces)")
	os.Exit(1)
}
