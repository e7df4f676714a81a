package decoy

import "strings"

// cleanPath is the path nginx maps to a file for a request's decoded path:
// slashes merged, "." and ".." resolved (ngx_http_parse_complex_uri). ok
// is false where nginx answers 400 instead: a path that does not begin
// with a slash ("*", or Go's parse of a bare authority), a NUL, or a ".."
// above the root. The result keeps a trailing slash, which decides
// between a directory's index and a file.
func cleanPath(p string) (clean string, ok bool) {
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return "", false
	}
	var out []string
	segs := strings.Split(p[1:], "/")
	dirEnd := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "":
			// merged slashes; a last empty segment is the trailing slash
			dirEnd = last
		case ".":
			dirEnd = last
		case "..":
			if len(out) == 0 {
				return "", false
			}
			out = out[:len(out)-1]
			dirEnd = last
		default:
			out = append(out, s)
			dirEnd = false
		}
	}
	clean = "/" + strings.Join(out, "/")
	if dirEnd && len(out) > 0 {
		clean += "/"
	}
	return clean, true
}

// denied reports whether nginx's usual rule against dotfiles,
// `location ~ /\.(?!well-known/) { deny all; }`, matches p: any path element
// that begins with a dot, except a /.well-known/ directory.
func denied(p string) bool {
	for i := 0; i+1 < len(p); i++ {
		if p[i] == '/' && p[i+1] == '.' && !strings.HasPrefix(p[i+2:], "well-known/") {
			return true
		}
	}
	return false
}
