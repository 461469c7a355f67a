// Command sshvpn carries IP packets (TUN) over SSH: "sshvpn user@host" runs
// "ssh user@host sshvpn --remote" and joins a tun device on each end.
// See README.md, or run "sshvpn --help".
package main

import "os"

func main() {
	os.Exit(runWith(os.Args[1:], nil))
}
