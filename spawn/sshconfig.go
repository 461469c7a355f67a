package spawn

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// SSHConfig is what the in-process SSH client (Native) takes from the
// user's OpenSSH configuration for one destination, resolved the way
// "ssh -G" resolves it: the first value found wins, the command line's
// [user@] and :port first, then the user's file (or -F FILE), then the
// system's; Host patterns, including negations, select the blocks. Match
// blocks are not supported.
type SSHConfig struct {
	Host                  string   // the name given, such as an alias
	HostName              string   // where to connect
	User                  string   // the remote user
	Port                  int      // the remote port
	IdentityFiles         []string // as configured, tokens unexpanded ("~/.ssh/id_%r")
	IdentitiesOnly        bool
	IdentityAgent         string   // "" (SSH_AUTH_SOCK), "none", or a socket path
	BatchMode             bool     // never ask for a passphrase or password
	ProxyJump             []string // hops, [user@]host[:port] each; none for "none"
	ServerAliveInterval   time.Duration
	ServerAliveCountMax   int
	UserKnownHostsFiles   []string // expanded
	GlobalKnownHostsFiles []string // expanded
	StrictHostKeyChecking string   // yes, no, accept-new or ask
	HostKeyAlias          string
	ConnectTimeout        time.Duration // 0: the system's TCP timeout
}

// DefaultIdentityFiles are the keys ssh tries when IdentityFile is not set,
// less those of types this client cannot use (DSA, XMSS).
var DefaultIdentityFiles = []string{"~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519", "~/.ssh/id_ed25519_sk"}

// systemConfig is the system-wide configuration file, read unless -F names
// another.
var systemConfig = "/etc/ssh/ssh_config"

// ResolveSSHConfig resolves destination ([user@]host[:port]) with the
// configuration file configFile, or with ~/.ssh/config and the system's
// file when configFile is empty.
func ResolveSSHConfig(configFile, destination string) (SSHConfig, error) {
	return resolveSSHConfig(configFile, destination, nil)
}

// resolveSSHConfig is ResolveSSHConfig for account as (nil: this process's).
func resolveSSHConfig(configFile, destination string, as *User) (SSHConfig, error) {
	home, local := homeOf(as), userOf(as)
	var files []string
	if configFile != "" {
		files = []string{configFile}
	} else {
		if home != "" {
			files = append(files, filepath.Join(home, ".ssh", "config"))
		}
		files = append(files, systemConfig)
	}
	var cfgs []*ssh_config.Config
	for i, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) && (configFile == "" || i > 0) {
			continue
		}
		if err != nil {
			return SSHConfig{}, fmt.Errorf("spawn: ssh configuration: %w", err)
		}
		c, err := ssh_config.Decode(f)
		f.Close()
		if err != nil && configFile == "" && name == systemConfig {
			// The system's file may use what the parser does not know
			// (Match final all, on some distributions): the user's own
			// settings still apply, as the README says.
			continue
		}
		if err != nil {
			return SSHConfig{}, fmt.Errorf("spawn: ssh configuration %s: %w (the in-process client does not support Match blocks; use the ssh binary)", name, err)
		}
		cfgs = append(cfgs, c)
	}
	return resolve(cfgs, destination, home, local)
}

// resolve resolves destination with cfgs for the account of home and
// local (its name).
func resolve(cfgs []*ssh_config.Config, destination, home, local string) (SSHConfig, error) {
	userPart, host, portPart, err := splitDestination(destination)
	if err != nil {
		return SSHConfig{}, err
	}
	set := func(key string) string {
		for _, c := range cfgs {
			if v, err := c.Get(host, key); err == nil && v != "" {
				return v
			}
		}
		return ""
	}
	get := func(key string) string {
		if v := set(key); v != "" {
			return v
		}
		return ssh_config.Default(key)
	}
	// IdentityFile adds up across blocks and files, as in ssh.
	getAll := func(key string) []string {
		var out []string
		for _, c := range cfgs {
			if vs, err := c.GetAll(host, key); err == nil {
				out = append(out, vs...)
			}
		}
		return out
	}
	yes := func(key string) bool {
		v := strings.ToLower(get(key))
		return v == "yes" || v == "true"
	}
	r := SSHConfig{Host: host, User: userPart}
	if r.User == "" {
		r.User = get("User")
	}
	if r.User == "" {
		r.User = local
	}
	port := portPart
	if port == "" {
		port = get("Port")
	}
	if r.Port, err = strconv.Atoi(port); err != nil || r.Port < 1 || r.Port > 65535 {
		return SSHConfig{}, fmt.Errorf("spawn: bad port %q for %s", port, host)
	}
	hostname := get("HostName")
	if hostname == "" {
		hostname = host
	}
	r.HostName = expand(hostname, map[byte]string{'h': host})
	if _, err := netip.ParseAddr(r.HostName); err != nil {
		r.HostName = strings.ToLower(r.HostName) // as ssh does with names
	}
	if pc := set("ProxyCommand"); pc != "" && !strings.EqualFold(pc, "none") {
		return SSHConfig{}, fmt.Errorf("spawn: %s is reached through a ProxyCommand, which the in-process client cannot run; use the ssh binary (no --native), or ProxyJump", host)
	}
	tokens := map[byte]string{'h': r.HostName, 'n': host, 'p': strconv.Itoa(r.Port), 'r': r.User, 'u': local, 'd': home}
	r.IdentityFiles = getAll("IdentityFile")
	if len(r.IdentityFiles) == 0 {
		r.IdentityFiles = DefaultIdentityFiles
	}
	r.IdentitiesOnly = yes("IdentitiesOnly")
	r.BatchMode = yes("BatchMode")
	r.IdentityAgent = set("IdentityAgent")
	if pj := get("ProxyJump"); pj != "" && pj != "none" {
		for _, hop := range strings.Split(pj, ",") {
			r.ProxyJump = append(r.ProxyJump, strings.TrimSpace(hop))
		}
	}
	if v := set("ServerAliveInterval"); v == "" && r.BatchMode {
		r.ServerAliveInterval = 300 * time.Second // what ssh does in batch mode
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return SSHConfig{}, fmt.Errorf("spawn: bad ServerAliveInterval %q", v)
		}
		r.ServerAliveInterval = time.Duration(n) * time.Second
	}
	if r.ServerAliveCountMax, err = strconv.Atoi(get("ServerAliveCountMax")); err != nil {
		return SSHConfig{}, fmt.Errorf("spawn: bad ServerAliveCountMax %q", get("ServerAliveCountMax"))
	}
	// The first UserKnownHostsFile found wins (one directive, many files).
	r.UserKnownHostsFiles = expandAll(fieldsOf(set("UserKnownHostsFile"), "~/.ssh/known_hosts ~/.ssh/known_hosts2"), tokens, home)
	r.GlobalKnownHostsFiles = expandAll(fieldsOf(set("GlobalKnownHostsFile"), "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"), tokens, home)
	r.StrictHostKeyChecking = strings.ToLower(get("StrictHostKeyChecking"))
	switch r.StrictHostKeyChecking {
	case "", "ask":
		r.StrictHostKeyChecking = "ask"
	case "off", "false":
		r.StrictHostKeyChecking = "no"
	case "true":
		r.StrictHostKeyChecking = "yes"
	}
	r.HostKeyAlias = strings.ToLower(set("HostKeyAlias"))
	if v := get("ConnectTimeout"); v != "" && v != "none" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return SSHConfig{}, fmt.Errorf("spawn: bad ConnectTimeout %q", v)
		}
		r.ConnectTimeout = time.Duration(n) * time.Second
	}
	return r, nil
}

// fieldsOf splits a keyword's value into its words, or def's.
func fieldsOf(val, def string) []string {
	if val == "" {
		val = def
	}
	return strings.Fields(val)
}

// expandAll expands paths; "none" lists no file.
func expandAll(paths []string, tokens map[byte]string, home string) []string {
	var out []string
	for _, p := range paths {
		if p != "none" {
			out = append(out, ExpandPath(p, tokens, home))
		}
	}
	return out
}

// ExpandPath expands ssh's ~ and %-tokens in a file name.
func ExpandPath(p string, tokens map[byte]string, home string) string {
	p = expand(p, tokens)
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}

// expand replaces ssh's %-tokens (%% and those in tokens).
func expand(s string, tokens map[byte]string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
		} else if v, ok := tokens[s[i]]; ok {
			b.WriteString(v)
		} else {
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// splitDestination splits [user@]host[:port], with [v6addr]:port too.
func splitDestination(d string) (user, host, port string, err error) {
	if d == "" || strings.HasPrefix(d, "-") {
		return "", "", "", fmt.Errorf("spawn: bad destination %q", d)
	}
	if i := strings.LastIndexByte(d, '@'); i >= 0 {
		user, d = d[:i], d[i+1:]
	}
	if h, p, err := net.SplitHostPort(d); err == nil {
		return user, h, p, nil
	}
	if strings.Count(d, ":") == 1 {
		h, p, _ := strings.Cut(d, ":")
		return user, h, p, nil
	}
	return user, strings.Trim(d, "[]"), "", nil
}
