package dnsupdate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeCloudflare is a local stand-in for the few endpoints of Cloudflare's
// v4 API that Point uses, answering with the JSON shapes of the real one
// (https://developers.cloudflare.com/api/resources/dns/subresources/records/):
// the one mock these tests allow, since the real API cannot be reached.
type fakeCloudflare struct {
	srv   *httptest.Server
	token string

	mu      sync.Mutex
	zones   map[string]string // ID → name
	records []fakeRecord
	calls   []string // "METHOD path", in order
	nextID  int
}

type fakeRecord struct {
	ID      string `json:"id"`
	ZoneID  string `json:"zone_id"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Proxied bool   `json:"proxied"`
}

const fakeZoneID = "023e105f4ecef8ad9ca31a8372d0c353"

func startFakeCloudflare(t testing.TB, token string) *fakeCloudflare {
	t.Helper()
	f := &fakeCloudflare{token: token, zones: map[string]string{fakeZoneID: "example.com", "1bc0105f4ecef8ad9ca31a8372d0c999": "example.org"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /client/v4/zones", f.listZones)
	mux.HandleFunc("GET /client/v4/zones/{zone}/dns_records", f.listRecords)
	mux.HandleFunc("POST /client/v4/zones/{zone}/dns_records", f.writeRecord)
	mux.HandleFunc("PUT /client/v4/zones/{zone}/dns_records/{id}", f.writeRecord)
	mux.HandleFunc("DELETE /client/v4/zones/{zone}/dns_records/{id}", f.deleteRecord)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			// What Cloudflare answers a token it does not take.
			fail(w, http.StatusForbidden, 10000, "Authentication error")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// api is the base URL to give FERRY_DNS_CLOUDFLARE_API.
func (f *fakeCloudflare) api() string { return f.srv.URL + "/client/v4/" }

func (f *fakeCloudflare) add(name, typ, content string, ttl int, proxied bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.records = append(f.records, fakeRecord{ID: fmt.Sprintf("%032x", f.nextID), ZoneID: fakeZoneID, Name: name, Type: typ, Content: content, TTL: ttl, Proxied: proxied})
}

// snapshot is the zone's records as "NAME TYPE CONTENT TTL proxied", sorted.
func (f *fakeCloudflare) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, r := range f.records {
		s = append(s, fmt.Sprintf("%s %s %s %d %v", r.Name, r.Type, r.Content, r.TTL, r.Proxied))
	}
	slices.Sort(s)
	return s
}

func (f *fakeCloudflare) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func reply(w http.ResponseWriter, result any, info map[string]int) {
	body := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func fail(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"success": false, "messages": []any{}, "result": nil,
		"errors": []any{map[string]any{"code": code, "message": msg}},
	})
}

// page cuts items by the page and per_page parameters, as the API does.
func page[T any](r *http.Request, items []T) ([]T, map[string]int) {
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	per, err := strconv.Atoi(r.URL.Query().Get("per_page"))
	if err != nil {
		per = 100
	}
	p, per = max(p, 1), min(max(per, 5), 5000)
	total := len(items)
	from, to := min((p-1)*per, total), min(p*per, total)
	return items[from:to], map[string]int{"page": p, "per_page": per, "count": to - from, "total_count": total, "total_pages": (total + per - 1) / per}
}

func (f *fakeCloudflare) listZones(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for id, name := range f.zones {
		if n := r.URL.Query().Get("name"); n == "" || n == name {
			out = append(out, map[string]any{"id": id, "name": name, "status": "active", "paused": false, "type": "full"})
		}
	}
	res, info := page(r, out)
	reply(w, res, info)
}

func (f *fakeCloudflare) listRecords(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.zones[r.PathValue("zone")]; !ok {
		fail(w, http.StatusNotFound, 7003, "Could not route to /zones/"+r.PathValue("zone")+"/dns_records, perhaps your object identifier is invalid?")
		return
	}
	q := r.URL.Query()
	var out []fakeRecord
	for _, rec := range f.records {
		if rec.ZoneID != r.PathValue("zone") {
			continue
		}
		if n := q.Get("name.exact"); n != "" && !strings.EqualFold(n, rec.Name) {
			continue
		}
		if typ := q.Get("type"); typ != "" && typ != rec.Type {
			continue
		}
		out = append(out, rec)
	}
	res, info := page(r, out)
	reply(w, res, info)
}

// writeRecord creates (POST) or overwrites (PUT) a record, checking the
// body as the API would.
func (f *fakeCloudflare) writeRecord(w http.ResponseWriter, r *http.Request) {
	var rec fakeRecord
	if err := json.NewDecoder(r.Body).Decode(&rec); err != nil {
		fail(w, http.StatusBadRequest, 9207, "Request body is invalid.")
		return
	}
	a, err := netip.ParseAddr(rec.Content)
	switch {
	case rec.Type != "A" && rec.Type != "AAAA", rec.Name == "":
		fail(w, http.StatusBadRequest, 9000, "DNS name is invalid.")
		return
	case err != nil || a.Is4() != (rec.Type == "A"):
		fail(w, http.StatusBadRequest, 9005, "Content for "+rec.Type+" record is invalid.")
		return
	case rec.TTL != 1 && (rec.TTL < 60 || rec.TTL > 86400):
		fail(w, http.StatusBadRequest, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rec.ZoneID = r.PathValue("zone")
	if id := r.PathValue("id"); id != "" {
		i := slices.IndexFunc(f.records, func(x fakeRecord) bool { return x.ID == id })
		if i < 0 {
			fail(w, http.StatusNotFound, 81044, "Record does not exist.")
			return
		}
		rec.ID = id
		f.records[i] = rec
	} else {
		f.nextID++
		rec.ID = fmt.Sprintf("%032x", f.nextID)
		f.records = append(f.records, rec)
	}
	reply(w, rec, nil)
}

func (f *fakeCloudflare) deleteRecord(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.PathValue("id")
	i := slices.IndexFunc(f.records, func(x fakeRecord) bool { return x.ID == id })
	if i < 0 {
		fail(w, http.StatusNotFound, 81044, "Record does not exist.")
		return
	}
	f.records = slices.Delete(f.records, i, i+1)
	reply(w, map[string]string{"id": id}, nil)
}
