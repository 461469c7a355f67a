package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/sshvpn/sshvpn/spawn"
)

type authorizedKeyCmd struct {
	policyFlags
	linkFlags
	Sshvpn  string `default:"sshvpn" placeholder:"PATH" help:"sshvpn as the server runs it (a full path is safest)."`
	Options string `placeholder:"OPTS" help:"More authorized_keys options to put after restrict, e.g. from=\"192.0.2.0/24\"."`

	PubkeyFile string `arg:"" placeholder:"PUBKEY_FILE" help:"The client's public key file (id_ed25519.pub), or - for standard input."`
}

// Run prints the authorized_keys line.
func (c *authorizedKeyCmd) Run() error {
	line, err := c.line()
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

func (c *authorizedKeyCmd) line() (string, error) {
	pol, err := c.parse(c.Route)
	if err != nil {
		return "", err
	}
	if _, err := c.mac(pol.mode == "tap"); err != nil {
		return "", err
	}
	if len(pol.addrs) == 0 && len(pol.pool) == 0 && pol.mode == "tun" {
		return "", errors.New("give --addr and --peer-addr, or --pool: without them the client would choose the server's tunnel addresses")
	}
	var b []byte
	if c.PubkeyFile == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
	} else {
		b, err = os.ReadFile(c.PubkeyFile)
	}
	if err != nil {
		return "", err
	}
	b = bytes.TrimSpace(b)
	key, comment, opts, rest, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return "", fmt.Errorf("%s: not an OpenSSH public key: %v", c.PubkeyFile, err)
	}
	if len(opts) > 0 || len(bytes.TrimSpace(rest)) > 0 {
		return "", fmt.Errorf("%s: give one bare public key (no options, one line)", c.PubkeyFile)
	}
	words := []string{spawn.QuoteWord(c.Sshvpn), "--remote"}
	for _, a := range append(c.policyFlags.args(), c.linkFlags.args()...) {
		words = append(words, spawn.QuoteWord(a))
	}
	cmd := strings.Join(words, " ")
	// Inside the quoted command= option sshd un-escapes \" and nothing
	// else, so only double quotes are escaped.
	cmd = strings.ReplaceAll(cmd, `"`, `\"`)
	options := "restrict"
	if c.Options != "" {
		options += "," + c.Options
	}
	line := fmt.Sprintf(`%s,command="%s" %s`, options, cmd, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	if comment != "" {
		line += " " + comment
	}
	return line, nil
}
