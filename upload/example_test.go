package upload_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/sshvpn/sshvpn/upload"
)

// Ensure with "the server" being this machine: a Runner that runs the
// commands with sh and a temporary $HOME. It uploads the running program
// (here the test binary), then finds it already there.
func ExampleEnsure() {
	home, err := os.MkdirTemp("", "home")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	run := upload.ExecRunner([]string{"env", "HOME=" + home, "sh", "-c"})
	for range 2 {
		res, err := upload.Ensure(context.Background(), run, upload.Options{Version: "sshvpn 1.2.3"})
		if err != nil {
			log.Fatal(err)
		}
		rel, _ := filepath.Rel(home, res.Path)
		fmt.Printf("~/%s copied=%v\n", rel, res.Copied)
	}
	// Output:
	// ~/.cache/sshvpn/sshvpn-1.2.3 copied=true
	// ~/.cache/sshvpn/sshvpn-1.2.3 copied=false
}

// Ensure over ssh, then the command line that runs the copy. A stand-in
// for ssh runs the commands here with sh and a temporary $HOME, as "ssh
// server CMD" runs CMD with the server's shell; with a real server, ssh's
// own argv goes to ExecRunner.
func ExampleEnsure_ssh() {
	home, err := os.MkdirTemp("", "home")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	ssh := []string{"ssh", "-o", "BatchMode=yes", "root@server.example"}
	standIn := []string{"env", "HOME=" + home, "sh", "-c"} // in place of ssh
	res, err := upload.Ensure(context.Background(), upload.ExecRunner(standIn), upload.Options{Version: "1.2.3"})
	if err != nil {
		log.Fatal(err)
	}
	if res.Note != "" {
		log.Print("upload: ", res.Note)
	}
	rel, _ := filepath.Rel(home, res.Path)
	// (The path is absolute; ~ shortens it here.)
	fmt.Println(strings.Join(append(ssh, "-T", "~/"+rel, "--remote"), " "))
	// Output:
	// ssh -o BatchMode=yes root@server.example -T ~/.cache/sshvpn/sshvpn-1.2.3 --remote
}
