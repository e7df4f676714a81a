// Command archive writes a release archive whose bytes depend only on its
// inputs: the release script (release/build.sh) uses it instead of tar and
// zip, whose output varies with the host's tar version, user and time zone.
//
//	go run ./release/archive -o OUT.tar.gz|OUT.tar|OUT.zip -mtime UNIX [-dir NAME] [-cap FILE] FILE[=PATH]...
//
// Every entry is owned by 0:0, dated -mtime (the commit's date), and stored
// under NAME/ in the order given, by its base name or as PATH; a file that is executable on disk gets mode
// 0755, any other 0644. gzip writes no name and no time. -cap FILE gives that
// entry the file capability cap_net_bind_service=+ep as a PAX xattr record,
// which `docker import` keeps in the image's layer (release/image.sh).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	out := flag.String("o", "", "archive to write: .tar.gz, .tar or .zip")
	mtime := flag.Int64("mtime", 0, "modification time of every entry, in Unix seconds")
	dir := flag.String("dir", "", "directory every entry is stored under (empty: none)")
	capFile := flag.String("cap", "", "the entry (as given) that gets cap_net_bind_service=+ep")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: archive -o OUT.tar.gz|OUT.tar|OUT.zip -mtime UNIX [-dir NAME] [-cap FILE] FILE[=PATH]...")
		os.Exit(2)
	}
	a := archive{mtime: time.Unix(*mtime, 0).UTC(), dir: *dir, capFile: *capFile}
	var err error
	switch {
	case strings.HasSuffix(*out, ".tar.gz"):
		err = a.writeFile(*out, a.writeTarGz, flag.Args())
	case strings.HasSuffix(*out, ".tar"):
		err = a.writeFile(*out, a.writeTar, flag.Args())
	case strings.HasSuffix(*out, ".zip"):
		err = a.writeFile(*out, a.writeZip, flag.Args())
	default:
		err = fmt.Errorf("%s: want a name ending in .tar.gz, .tar or .zip", *out)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "archive: %v\n", err)
		os.Exit(1)
	}
}
