// Package e2e holds sshvpn's end-to-end tests: they build the binary, create
// network namespaces joined by veth pairs with scripts/lab.sh, start a real
// OpenSSH sshd in one, and send real traffic through real tun devices. They
// need root, sshd, ip, ping and /dev/net/tun; without them the tests skip,
// except when CI is set, where a missing prerequisite fails.
package e2e
