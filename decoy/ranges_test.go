package decoy

import "testing"

// FuzzParseRanges: a Range header is network input; every range kept lies
// within the file.
func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"bytes=0-1,4-5", "bytes=-5", "bytes=100-", "bytes= 1 - 2 ,3-", "bytes=x-y", "bytes=-0"} {
		f.Add(s, int64(46))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		rs, ok := parseRanges(h, size)
		if ok != (len(rs) > 0) {
			t.Fatalf("%q: ok %v with %d ranges", h, ok, len(rs))
		}
		for _, r := range rs {
			if r.start < 0 || r.start >= r.end || r.end > size {
				t.Fatalf("%q, size %d: range %+v", h, size, r)
			}
		}
	})
}
