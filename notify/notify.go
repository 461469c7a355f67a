// Package notify tells systemd how sshvpn is doing, by the sd_notify
// protocol: a service started with Type=notify finds the path of a datagram
// socket in $NOTIFY_SOCKET and sends it messages of newline-separated
// VARIABLE=value lines, such as READY=1 once it is up (systemctl start
// returns then, and units ordered after it start), STATUS=text for the line
// systemctl status shows, and STOPPING=1 when it begins to shut down. A
// NOTIFY_SOCKET that begins with '@' names a socket in Linux's abstract
// namespace.
//
// Outside systemd NOTIFY_SOCKET is unset and every function here does
// nothing and returns no error, so callers need not check where they run.
// The protocol is implemented here by hand, without libsystemd; see
// sd_notify(3) for the full list of variables.
package notify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// timeout bounds a send, so a service manager that stopped reading cannot
// stall the tunnel.
const timeout = 2 * time.Second

// Send sends state, one or more newline-separated VARIABLE=value lines, as
// one datagram to the socket named by $NOTIFY_SOCKET. It returns false and
// no error when NOTIFY_SOCKET is unset or empty (not run by systemd), true
// once the message is sent, and false with an error, prefixed "notify: ",
// when NOTIFY_SOCKET is not an absolute path or an abstract name ('@...') or
// the send fails. Values in state are sent as they are; the helpers below
// make sure a status stays on one line.
func Send(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	if name[0] != '/' && name[0] != '@' {
		return false, fmt.Errorf("notify: NOTIFY_SOCKET=%q: not an absolute path or an abstract socket name (@...)", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("notify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return false, fmt.Errorf("notify: %w", err)
	}
	n, err := conn.Write([]byte(state))
	if err == nil && n < len(state) {
		err = errors.New("short write")
	}
	if err != nil {
		return false, fmt.Errorf("notify: send to %s: %w", name, err)
	}
	return true, nil
}

// Ready tells systemd that the service is up: "READY=1", followed by
// "STATUS=status" unless status is empty.
func Ready(status string) error {
	state := "READY=1"
	if status != "" {
		state += "\nSTATUS=" + oneLine(status)
	}
	_, err := Send(state)
	return err
}

// Status sets the one-line status that systemctl status shows: "STATUS=s".
// Line breaks in s become spaces.
func Status(s string) error {
	_, err := Send("STATUS=" + oneLine(s))
	return err
}

// Stopping tells systemd that the service is shutting down: "STOPPING=1".
func Stopping() error {
	_, err := Send("STOPPING=1")
	return err
}

// oneLine replaces line breaks with spaces: a newline in a value would end
// its line and start another variable.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r':
			return ' '
		}
		return r
	}, s)
}
