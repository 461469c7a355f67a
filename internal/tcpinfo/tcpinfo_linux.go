//go:build linux

package tcpinfo

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The inet_diag request and answer (linux/inet_diag.h), as the kernel
// lays them out.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagInfo     = 2  // INET_DIAG_INFO: the answer carries tcp_info
	reqLen           = unix.SizeofNlMsghdr + 56
	diagMsgLen       = 72 // struct inet_diag_msg
	maxAnswer        = 8192
)

// Get returns the counters of the TCP connection from local to remote.
// An IPv4 connection may be held by an IPv6 socket (an sshd listening on
// "::"): both are looked for.
func Get(local, remote netip.AddrPort) (Info, error) {
	if !local.IsValid() || !remote.IsValid() || local.Addr().Is4() != remote.Addr().Is4() {
		return Info{}, fmt.Errorf("tcpinfo: addresses %v and %v are not one connection's", local, remote)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_INET_DIAG)
	if err != nil {
		return Info{}, fmt.Errorf("tcpinfo: socket diagnostics: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	families := []uint8{unix.AF_INET6}
	if local.Addr().Is4() {
		families = []uint8{unix.AF_INET, unix.AF_INET6}
	}
	var last error
	for _, fam := range families {
		info, err := query(fd, fam, local, remote)
		if err == nil {
			return info, nil
		}
		last = err
	}
	return Info{}, last
}

// query asks for one socket of family fam by its addresses.
func query(fd int, fam uint8, local, remote netip.AddrPort) (Info, error) {
	var req [reqLen]byte
	h := (*unix.NlMsghdr)(unsafe.Pointer(&req[0]))
	h.Len = reqLen
	h.Type = sockDiagByFamily
	h.Flags = unix.NLM_F_REQUEST
	h.Seq = 1
	r := req[unix.SizeofNlMsghdr:]
	r[0] = fam
	r[1] = unix.IPPROTO_TCP
	r[2] = 1 << (inetDiagInfo - 1)
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]                                      // struct inet_diag_sockid
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	putAddr(id[4:20], fam, local.Addr())
	putAddr(id[20:36], fam, remote.Addr())
	binary.NativeEndian.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	binary.NativeEndian.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Info{}, fmt.Errorf("tcpinfo: socket diagnostics: %w", err)
	}
	buf := make([]byte, maxAnswer)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return Info{}, fmt.Errorf("tcpinfo: socket diagnostics: %w", err)
	}
	return parse(buf[:n], local, remote)
}

// putAddr writes a as family fam's address: IPv4 in the first word, or
// IPv6 (IPv4-mapped for an IPv4 address).
func putAddr(b []byte, fam uint8, a netip.Addr) {
	if fam == unix.AF_INET {
		a4 := a.As4()
		copy(b, a4[:])
		return
	}
	a16 := a.As16()
	copy(b, a16[:])
}

// parse reads the kernel's answer: one inet_diag_msg with its tcp_info,
// or an error.
func parse(b []byte, local, remote netip.AddrPort) (Info, error) {
	if len(b) < unix.SizeofNlMsghdr {
		return Info{}, fmt.Errorf("tcpinfo: a short answer (%d bytes)", len(b))
	}
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	if int(h.Len) > len(b) || h.Len < unix.SizeofNlMsghdr {
		return Info{}, fmt.Errorf("tcpinfo: a malformed answer")
	}
	b = b[unix.SizeofNlMsghdr:h.Len]
	switch h.Type {
	case unix.NLMSG_ERROR:
		if len(b) >= 4 {
			if errno := unix.Errno(-int32(binary.NativeEndian.Uint32(b))); errno == unix.ENOENT {
				return Info{}, fmt.Errorf("%w: %v to %v", ErrNotFound, local, remote)
			} else if errno != 0 {
				return Info{}, fmt.Errorf("tcpinfo: socket diagnostics: %w", errno)
			}
		}
		return Info{}, fmt.Errorf("%w: %v to %v", ErrNotFound, local, remote)
	case sockDiagByFamily:
	default:
		return Info{}, fmt.Errorf("tcpinfo: an answer of type %d", h.Type)
	}
	if len(b) < diagMsgLen {
		return Info{}, fmt.Errorf("tcpinfo: a short answer")
	}
	for attrs := b[diagMsgLen:]; len(attrs) >= 4; {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:])
		if l < 4 || l > len(attrs) {
			break
		}
		if typ == inetDiagInfo {
			var ti unix.TCPInfo
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&ti)), unsafe.Sizeof(ti)), attrs[4:l])
			return Info{SegsOut: ti.Segs_out, Retrans: ti.Total_retrans, RTT: time.Duration(ti.Rtt) * time.Microsecond}, nil
		}
		attrs = attrs[min(len(attrs), (l+3)&^3):]
	}
	return Info{}, fmt.Errorf("tcpinfo: the answer carries no tcp_info")
}
