package spawn_test

import (
	"fmt"

	"github.com/sshvpn/sshvpn/spawn"
)

func ExampleSplitCommand() {
	words, err := spawn.SplitCommand(`ssh -p 2222 -o "ProxyCommand=ssh -W %h:%p jump" -i '/home/me/my key'`)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range words {
		fmt.Printf("%q\n", w)
	}
	_, err = spawn.SplitCommand(`ssh -o 'unterminated`)
	fmt.Println(err)
	// Output:
	// "ssh"
	// "-p"
	// "2222"
	// "-o"
	// "ProxyCommand=ssh -W %h:%p jump"
	// "-i"
	// "/home/me/my key"
	// spawn: unterminated single quote in "ssh -o 'unterminated"
}

func ExampleOptions_Args() {
	ssh, _ := spawn.SplitCommand("ssh -p 2222")
	argv, err := spawn.Options{SSH: ssh, Destination: "me@vpn.example.org", RemoteCommand: "sshvpn --remote"}.Args()
	fmt.Printf("%q %v\n", argv, err)
	// Output:
	// ["ssh" "-p" "2222" "-T" "-e" "none" "me@vpn.example.org" "sshvpn --remote"] <nil>
}
