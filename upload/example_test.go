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

// Ensure over ssh, then the command line that runs the copy.
func ExampleEnsure_ssh() {
	ssh := []string{"ssh", "-o", "BatchMode=yes", "root@server.example"}
	res, err := upload.Ensure(context.Background(), upload.ExecRunner(ssh), upload.Options{Version: "1.2.3", Logf: log.Printf})
	if err != nil {
		log.Fatal(err)
	}
	if res.Note != "" {
		log.Print("upload: ", res.Note)
	}
	remoteCmd := "'" + strings.ReplaceAll(res.Path, "'", `'\''`) + "' --remote"
	fmt.Println(strings.Join(append(ssh, "-T", remoteCmd), " "))
}
