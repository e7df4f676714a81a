package decoy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// source is where a static site's files come from: a directory (dir.go) or
// the built-in page (page.go). name is slash-separated, without a leading
// slash; "" is the root directory.
type source interface {
	open(name string) (file, error)
}

// file is an open file of a source.
type file interface {
	io.ReadSeeker
	io.Closer
	Stat() (fs.FileInfo, error)
}

// static answers as nginx's core, index and static modules do for a
// server block like this, Debian's default site with two usual lines:
//
//	server_tokens off;
//	root DIR;
//	index index.html;
//	location ~ /\.(?!well-known/) { deny all; }
//
// and without nginx's default of following symlinks anywhere: a link that
// leads out of the root gets 403 (as with disable_symlinks on, which the
// comparison uses; links within the root are followed, which nginx would
// then refuse too).
//
// Statuses, headers and error pages follow nginx 1.22 (checked side by side
// in nginx_test.go); the answers net/http gives before a handler runs are
// nginx's too once conn.go has shaped them.
type static struct {
	src source
	// boundaries counts multipart answers, whose boundary nginx numbers.
	boundaries *atomic.Uint64
}

func (s static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if code, detail, ok := refuse(r); !ok {
		writeError(w, r, code, detail, true)
		return
	}
	p, ok := cleanPath(r.URL.Path)
	if !ok {
		writeError(w, r, http.StatusBadRequest, "", true)
		return
	}
	if denied(p) {
		writeError(w, r, http.StatusForbidden, "", false)
		return
	}
	// The static module refuses other methods before it looks at the
	// path; POST gets as far as finding the file.
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		writeError(w, r, http.StatusMethodNotAllowed, "", false)
		return
	}
	name := strings.Trim(p, "/")
	if strings.HasSuffix(p, "/") {
		// The index module: the directory's index.html, else 403 for a
		// directory (no listings), 404 for anything else.
		index := strings.TrimPrefix(name+"/index.html", "/")
		f, fi, err := s.openFile(index)
		if err == nil && !fi.IsDir() {
			defer f.Close()
			if r.Method == http.MethodPost {
				writeError(w, r, http.StatusMethodNotAllowed, "", false)
				return
			}
			s.serveFile(w, r, index, f, fi)
			return
		}
		if f != nil {
			f.Close()
		}
		if d, di, err := s.openFile(name); err == nil {
			d.Close()
			if di.IsDir() {
				writeError(w, r, http.StatusForbidden, "", false)
				return
			}
		} else if code := openStatus(err); code != http.StatusNotFound {
			writeError(w, r, code, "", false)
			return
		}
		writeError(w, r, http.StatusNotFound, "", false)
		return
	}
	f, fi, err := s.openFile(name)
	if err != nil {
		writeError(w, r, openStatus(err), "", false)
		return
	}
	defer f.Close()
	switch {
	case fi.IsDir():
		s.redirectDir(w, r, p)
	case !fi.Mode().IsRegular():
		writeError(w, r, http.StatusNotFound, "", false)
	case r.Method == http.MethodPost:
		writeError(w, r, http.StatusMethodNotAllowed, "", false)
	default:
		s.serveFile(w, r, name, f, fi)
	}
}

func (s static) openFile(name string) (file, fs.FileInfo, error) {
	f, err := s.src.open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// openStatus is nginx's answer to a failed open: 404 for what is not
// there, 403 for the rest it may not follow (permissions, a symlink out of
// the root).
func openStatus(err error) int {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG) {
		return http.StatusNotFound
	}
	return http.StatusForbidden
}

// redirectDir answers a directory named without its slash as nginx does:
// 301 to an absolute URL with the slash, the port the connection came to
// unless it is the scheme's own.
func (s static) redirectDir(w http.ResponseWriter, r *http.Request, p string) {
	scheme, defPort := "http", "80"
	if r.TLS != nil {
		scheme, defPort = "https", "443"
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil && port != defPort {
			host += ":" + port
		}
	}
	loc := scheme + "://" + host + p + "/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	writeError(w, r, http.StatusMovedPermanently, "", false)
}

// serveFile sends f with nginx's headers; net/http's ServeContent does the
// ranges and conditions, shaped where nginx differs.
func (s static) serveFile(w http.ResponseWriter, r *http.Request, name string, f file, fi fs.FileInfo) {
	mod := fi.ModTime().Truncate(time.Second)
	h := w.Header()
	h.Set("Content-Type", mimeType(name))
	// nginx's ETag: mtime and size in hex. "Etag" is how net/http
	// spells it in Header; conn.go writes it as nginx does.
	h.Set("Etag", fmt.Sprintf(`"%x-%x"`, mod.Unix(), fi.Size()))
	// nginx's if_modified_since is "exact" by default: a date other
	// than the file's own gets the whole file.
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err != nil || !t.Equal(mod) {
			r.Header.Del("If-Modified-Since")
		}
	}
	h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	if serveRanges(w, r, f, mimeType(name), fi.Size(), s.boundaries) {
		return
	}
	http.ServeContent(&fileWriter{ResponseWriter: w, r: r, mod: mod, size: fi.Size()}, r, "", mod, f)
}

// fileWriter turns ServeContent's own error answers (416, 412) into
// nginx's pages, and shapes the others' headers as nginx's: Last-Modified
// on a 304, no Accept-Ranges on a 206, Content-Range on every 416.
type fileWriter struct {
	http.ResponseWriter
	r       *http.Request
	mod     time.Time
	size    int64
	replace bool
}

func (f *fileWriter) WriteHeader(code int) {
	switch {
	case code == http.StatusNotModified:
		f.Header().Set("Last-Modified", f.mod.UTC().Format(http.TimeFormat))
	case code == http.StatusPartialContent:
		f.Header().Del("Accept-Ranges")
	case code == http.StatusRequestedRangeNotSatisfiable:
		f.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", f.size))
		fallthrough
	case code >= 400:
		f.replace = true
		writeError(f.ResponseWriter, f.r, code, "", false)
		return
	}
	f.ResponseWriter.WriteHeader(code)
}

func (f *fileWriter) Write(p []byte) (int, error) {
	if f.replace {
		return len(p), nil
	}
	return f.ResponseWriter.Write(p)
}
