package decoy

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// byteRange is [start, end) of a file.
type byteRange struct{ start, end int64 }

// parseRanges reads a Range header as nginx's range filter does
// (ngx_http_range_parse): ranges past the end are dropped, ends past it
// cut. ok is false for a header nginx refuses, or one with no range left.
func parseRanges(h string, size int64) (rs []byteRange, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return nil, false
	}
	for _, part := range strings.Split(spec, ",") {
		first, last, dash := strings.Cut(strings.TrimSpace(part), "-")
		if !dash {
			return nil, false
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var start, end int64
		switch {
		case first == "" && last == "":
			return nil, false
		case first == "":
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, false
			}
			start, end = max(size-n, 0), size
		default:
			n, err := strconv.ParseInt(first, 10, 64)
			if err != nil || n < 0 {
				return nil, false
			}
			start, end = n, size
			if last != "" {
				m, err := strconv.ParseInt(last, 10, 64)
				if err != nil || m < n {
					return nil, false
				}
				end = min(m+1, size)
			}
		}
		if start < size && start < end {
			rs = append(rs, byteRange{start, end})
		}
	}
	return rs, len(rs) > 0
}

// conditional reports whether r has a precondition, which ServeContent
// then checks, ranges and all.
func conditional(r *http.Request) bool {
	for _, h := range []string{"If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	return false
}

// serveRanges sends several ranges of f as nginx does: multipart with a
// boundary of 20 digits that counts up, each part's Content-Type before its
// Content-Range. It reports false, having sent nothing, when ServeContent
// should answer instead: one range, or a header nginx does not take.
func serveRanges(w http.ResponseWriter, r *http.Request, f io.ReadSeeker, ctype string, size int64, boundaries *atomic.Uint64) bool {
	h := r.Header.Get("Range")
	if !strings.Contains(h, ",") || conditional(r) {
		return false
	}
	rs, ok := parseRanges(h, size)
	if !ok || len(rs) < 2 {
		return false
	}
	var total int64
	for _, rg := range rs {
		total += rg.end - rg.start
	}
	if total > size {
		// nginx then sends the whole file.
		r.Header.Del("Range")
		return false
	}
	boundary := fmt.Sprintf("%020d", boundaries.Add(1))
	heads := make([]string, len(rs))
	length := int64(len("\r\n--" + boundary + "--\r\n"))
	for i, rg := range rs {
		heads[i] = "\r\n--" + boundary + "\r\nContent-Type: " + ctype + "\r\nContent-Range: bytes " +
			strconv.FormatInt(rg.start, 10) + "-" + strconv.FormatInt(rg.end-1, 10) + "/" + strconv.FormatInt(size, 10) + "\r\n\r\n"
		length += int64(len(heads[i])) + rg.end - rg.start
	}
	hd := w.Header()
	hd.Set("Content-Type", "multipart/byteranges; boundary="+boundary)
	hd.Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(http.StatusPartialContent)
	if r.Method == http.MethodHead {
		return true
	}
	for i, rg := range rs {
		io.WriteString(w, heads[i])
		if _, err := f.Seek(rg.start, io.SeekStart); err != nil {
			return true
		}
		if _, err := io.CopyN(w, f, rg.end-rg.start); err != nil {
			return true
		}
	}
	io.WriteString(w, "\r\n--"+boundary+"--\r\n")
	return true
}
