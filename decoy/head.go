package decoy

import (
	"bytes"
	"slices"
	"strconv"
)

// headOrder is the order nginx writes its own headers in
// (ngx_http_header_filter_module.c); others follow, in net/http's order.
var headOrder = []string{"Server", "Date", "Content-Type", "Content-Length", "Last-Modified", "Location", "Connection", "ETag", "Accept-Ranges", "Content-Range"}

// nginxHead rewrites p, which begins with a response head that net/http
// wrote, as nginx would have written it: nginx's reason phrase, its header
// order, "ETag" spelled as nginx spells it. ok is false, and p is to be
// sent as it is, unless the head carries "Server: nginx" (only the
// decoy's answers do, shape's) and ends within p.
func nginxHead(p []byte) (out []byte, ok bool) {
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	lines := bytes.Split(p[:end], []byte("\r\n"))
	status := lines[0]
	if len(status) < 12 || len(status) > 12 && status[12] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(string(status[9:12]))
	if err != nil || !slices.ContainsFunc(lines[1:], func(l []byte) bool { return string(l) == "Server: nginx" }) {
		return nil, false
	}
	fields := lines[1:]
	rank := func(l []byte) int {
		name, _, _ := bytes.Cut(l, []byte(":"))
		for i, h := range headOrder {
			if bytes.EqualFold(name, []byte(h)) {
				return i
			}
		}
		return len(headOrder)
	}
	slices.SortStableFunc(fields, func(a, b []byte) int { return rank(a) - rank(b) })
	out = make([]byte, 0, len(p)+8)
	// nginx answers HTTP/1.0 requests in HTTP/1.1 too.
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, reason(code)...)
	for _, l := range fields {
		out = append(out, "\r\n"...)
		if v, isETag := bytes.CutPrefix(l, []byte("Etag:")); isETag {
			out = append(out, "ETag:"...)
			out = append(out, v...)
			continue
		}
		out = append(out, l...)
	}
	return append(out, p[end:]...), true
}
