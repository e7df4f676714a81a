package decoy

import (
	"fmt"
	"os"
)

// dirSource serves the files under a directory and nothing outside it:
// each lookup goes through os.Root, which refuses ".." and symlinks that
// lead out. The root is opened per request, as nginx resolves each path
// anew, so that a directory replaced by a deploy is served at once.
type dirSource string

func (d dirSource) open(name string) (file, error) {
	root, err := os.OpenRoot(string(d))
	if err != nil {
		return nil, fmt.Errorf("decoy directory: %w", err)
	}
	// A file opened through root stays open after root is closed.
	defer root.Close()
	if name == "" {
		name = "."
	}
	return root.Open(name)
}
