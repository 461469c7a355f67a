package spawn

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestHostKeysAlias: with HostKeyAlias the key is looked up under the alias
// alone, whatever the port (as ssh does): another key is a changed key, not
// an unknown host that --accept-new would record.
func TestHostKeysAlias(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	k1, k2 := newHostKey(t), newHostKey(t)
	os.WriteFile(kh, []byte(knownhosts.Line([]string{"myalias"}, k1)+"\n"), 0o600)
	cfg := SSHConfig{Host: "gw", HostName: "192.0.2.9", Port: 2222, HostKeyAlias: "myalias",
		UserKnownHostsFiles: []string{kh}, StrictHostKeyChecking: "yes"}
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 2222}
	for _, acceptNew := range []bool{false, true} {
		n := &Native{AcceptNew: acceptNew}
		cb, algos, err := n.hostKeys(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(algos) == 0 {
			t.Errorf("no host-key algorithms for the alias: it was not found")
		}
		if err := cb("192.0.2.9:2222", remote, k1); err != nil {
			t.Errorf("the known key under the alias: %v", err)
		}
		err = cb("192.0.2.9:2222", remote, k2)
		if err == nil || !strings.Contains(err.Error(), "REMOTE HOST IDENTIFICATION HAS CHANGED") {
			t.Errorf("another key, accept-new %v: %v; want it refused as changed", acceptNew, err)
		}
	}
	if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 1 {
		t.Errorf("known_hosts was written to:\n%s", b)
	}
}

// TestHostKeysAcceptNew: --accept-new records the host under its known_hosts
// name ([host]:port off port 22), not under the address it was reached at;
// the next connection needs no flag.
func TestHostKeysAcceptNew(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	k := newHostKey(t)
	cfg := SSHConfig{Host: "gw", HostName: "gw.example.net", Port: 2222, UserKnownHostsFiles: []string{kh}, StrictHostKeyChecking: "ask"}
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 2222}
	cb, _, _ := (&Native{}).hostKeys(cfg)
	if err := cb("", remote, k); err == nil || !strings.Contains(err.Error(), "not in known_hosts") {
		t.Fatalf("unknown host without --accept-new: %v", err)
	}
	cb, _, _ = (&Native{AcceptNew: true}).hostKeys(cfg)
	if err := cb("", remote, k); err != nil {
		t.Fatalf("--accept-new: %v", err)
	}
	b, _ := os.ReadFile(kh)
	if !strings.HasPrefix(string(b), "[gw.example.net]:2222 ") || strings.Contains(string(b), "192.0.2.9") {
		t.Errorf("recorded %q", b)
	}
	cb, _, _ = (&Native{}).hostKeys(cfg)
	if err := cb("", remote, k); err != nil {
		t.Errorf("after --accept-new: %v", err)
	}
}

// TestAuthAgentThenFile: an ssh-agent that holds another key does not keep
// the identity file from being tried (x/crypto skips a second method of the
// same name, so they must be one).
func TestAuthAgentThenFile(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	_, filePriv, _ := ed25519.GenerateKey(rand.Reader)
	fileSigner, _ := ssh.NewSignerFromKey(filePriv)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)

	dir := t.TempDir()
	// The agent, with the key the server does not accept.
	keyring := agent.NewKeyring()
	keyring.Add(agent.AddedKey{PrivateKey: otherPriv})
	sock := filepath.Join(dir, "agent")
	al, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	go func() {
		for {
			c, err := al.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(keyring, c)
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)

	// The server accepts the identity file's key only.
	sc := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(fileSigner.PublicKey().Marshal()) {
			return nil, nil
		}
		return nil, errors.New("no")
	}}
	sc.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conn, chans, reqs, err := ssh.NewServerConn(c, sc)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for ch := range chans {
				ch.Reject(ssh.Prohibited, "no")
			}
		}()
		conn.Wait()
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	block, _ := ssh.MarshalPrivateKey(filePriv, "")
	idFile := filepath.Join(dir, "id")
	os.WriteFile(idFile, pem.EncodeToMemory(block), 0o600)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{"[127.0.0.1]:" + strconv.Itoa(port)}, hostSigner.PublicKey())+"\n"), 0o600)
	cfg := SSHConfig{Host: "local", HostName: "127.0.0.1", Port: port, User: "u", IdentityFiles: []string{idFile},
		UserKnownHostsFiles: []string{kh}, StrictHostKeyChecking: "yes"}
	c, err := (&Native{}).connect(t.Context(), cfg)
	if err != nil {
		t.Fatalf("login with the identity file while the agent holds another key: %v", err)
	}
	c.closeAll()
}

// TestHostKeysHashedAndRevoked: a hashed known_hosts entry is found; a key
// marked @revoked is refused, even with --accept-new.
func TestHostKeysHashedAndRevoked(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	good, bad := newHostKey(t), newHostKey(t)
	lines := knownhosts.Line([]string{knownhosts.HashHostname("gw.example.net")}, good) + "\n" +
		"@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(bad))) + "\n"
	os.WriteFile(kh, []byte(lines), 0o600)
	cfg := SSHConfig{Host: "gw", HostName: "gw.example.net", Port: 22, UserKnownHostsFiles: []string{kh}, StrictHostKeyChecking: "yes"}
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 22}
	cb, _, err := (&Native{AcceptNew: true}).hostKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cb("", remote, good); err != nil {
		t.Errorf("the hashed entry's key: %v", err)
	}
	if err := cb("", remote, bad); err == nil || !strings.Contains(err.Error(), "@revoked") {
		t.Errorf("a revoked key: %v", err)
	}
}

// tunServer is an in-process SSH server that accepts tun@openssh.com
// channels and echoes each packet back, as a server whose tun device
// answers everything; it answers keepalive@openssh.com.
func tunServer(t *testing.T) (cfgFile string) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	userSigner, _ := ssh.NewSignerFromKey(userPriv)
	sc := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(userSigner.PublicKey().Marshal()) {
			return nil, nil
		}
		return nil, errors.New("no")
	}}
	sc.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, chans, reqs, err := ssh.NewServerConn(c, sc)
				if err != nil {
					return
				}
				defer conn.Close()
				go func() {
					for r := range reqs {
						r.Reply(r.Type == "keepalive@openssh.com", nil)
					}
				}()
				for nc := range chans {
					if nc.ChannelType() != "tun@openssh.com" {
						nc.Reject(ssh.UnknownChannelType, "no")
						continue
					}
					ch, creqs, err := nc.Accept()
					if err != nil {
						return
					}
					go ssh.DiscardRequests(creqs)
					go func() { // echo, one packet per message
						buf := make([]byte, 65536)
						for {
							n, err := ch.Read(buf)
							if err != nil {
								ch.Close()
								return
							}
							ch.Write(buf[:n])
						}
					}()
				}
			}()
		}
	}()
	dir := t.TempDir()
	block, _ := ssh.MarshalPrivateKey(userPriv, "")
	os.WriteFile(filepath.Join(dir, "id"), pem.EncodeToMemory(block), 0o600)
	port := ln.Addr().(*net.TCPAddr).Port
	os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(knownhosts.Line([]string{"[127.0.0.1]:" + strconv.Itoa(port)}, hostSigner.PublicKey())+"\n"), 0o600)
	cfgFile = filepath.Join(dir, "ssh_config")
	os.WriteFile(cfgFile, []byte("Host tunsrv\n\tHostName 127.0.0.1\n\tPort "+strconv.Itoa(port)+"\n\tUser u\n\tIdentityFile "+filepath.Join(dir, "id")+
		"\n\tIdentitiesOnly yes\n\tUserKnownHostsFile "+filepath.Join(dir, "known_hosts")+"\n\tGlobalKnownHostsFile /dev/null\n\tStrictHostKeyChecking yes\n"), 0o600)
	return cfgFile
}

// TestOpenSSHTunPackets: packets cross the tun@openssh.com channel each
// behind its address family and come back whole, a keepalive is answered,
// and the MTU is capped at what sshd takes.
func TestOpenSSHTunPackets(t *testing.T) {
	cfg := tunServer(t)
	d := &OpenSSHTun{Native: Native{ConfigFile: cfg, Destination: "tunsrv"}, Unit: -1}
	conn, err := d.DialPackets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.MaxMTU() != maxOpenSSHMTU {
		t.Errorf("MaxMTU %d, want %d", conn.MaxMTU(), maxOpenSSHMTU)
	}
	pkts := [][]byte{ip4(84), ip6(1200), ip4(1500)}
	for _, pkt := range pkts {
		if err := conn.WritePacket(pkt); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Keepalive(); err != nil {
		t.Errorf("keepalive: %v", err)
	}
	buf := make([]byte, maxPacket)
	for i, pkt := range pkts {
		n, err := conn.ReadPacket(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], pkt) {
			t.Errorf("packet %d came back as %d bytes, want %d", i, n, len(pkt))
		}
	}
	if err := conn.WritePacket(nil); err == nil {
		t.Error("an empty packet was sent")
	}
	conn.Close()
	if _, err := conn.ReadPacket(buf); err == nil {
		t.Error("a read after Close succeeded")
	}
}
