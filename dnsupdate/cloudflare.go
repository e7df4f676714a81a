package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	cfdns "github.com/cloudflare/cloudflare-go/v6/dns"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/zones"
)

// Only cloudflare-go's dns and zones packages are used, never its root
// package: that one imports every Cloudflare service there is, which took
// minutes to compile on CI's machine and doubled the binary.

// cloudflareAPI is the default FERRY_DNS_CLOUDFLARE_API.
const cloudflareAPI = "https://api.cloudflare.com/client/v4/"

// cloudflareMinTTL is the shortest TTL Cloudflare takes (1 is its "auto",
// which is 300 s for records that are not proxied).
const cloudflareMinTTL = 60 * time.Second

// cloudflareTokenFallback is read when FERRY_DNS_CLOUDFLARE_TOKEN is not
// set: it is the name Cloudflare's own tools read.
const cloudflareTokenFallback = "CLOUDFLARE_API_TOKEN"

var zoneIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// cloudflare keeps a name's records in a Cloudflare zone, through its v4
// API, DNS only (proxied off: phones must reach the edge itself).
type cloudflare struct {
	records  *cfdns.RecordService
	zones    *zones.ZoneService
	zoneID   string // "" to find the zone by name
	zoneName string // fully qualified, or "" to find it from the host name
}

func newCloudflare(getenv func(string) string) (*cloudflare, error) {
	token := getenv(VarCloudflareToken)
	if token == "" {
		token = getenv(cloudflareTokenFallback)
	}
	switch {
	case token == "":
		return nil, &VarError{Var: VarCloudflareToken, Form: formCFToken, Err: errors.New("not set, nor " + cloudflareTokenFallback)}
	case strings.TrimSpace(token) != token:
		// Never quoted: a wrong token may still be a token.
		return nil, &VarError{Var: VarCloudflareToken, Form: formCFToken, Err: errors.New("begins or ends in white space or a line break; remove it")}
	case strings.ContainsFunc(token, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return nil, &VarError{Var: VarCloudflareToken, Form: formCFToken, Err: errors.New("has characters a token does not have")}
	}
	c := &cloudflare{zoneID: getenv(VarCloudflareZoneID)}
	if c.zoneID != "" && !zoneIDPattern.MatchString(c.zoneID) {
		return nil, &VarError{Var: VarCloudflareZoneID, Form: formCFZoneID, Err: errors.New("is not 32 hex digits")}
	}
	var err error
	if c.zoneName, err = parseZone(getenv(VarZone)); err != nil {
		return nil, &VarError{Var: VarZone, Form: formZone, Err: err}
	}
	api := cloudflareAPI
	if v := getenv(VarCloudflareAPI); v != "" {
		if api, err = parseAPI(v); err != nil {
			return nil, &VarError{Var: VarCloudflareAPI, Form: formCFAPI, Err: err}
		}
	}
	// Not cloudflare.DefaultClientOptions: it reads CLOUDFLARE_* from the
	// process's environment, and New is configured from getenv alone.
	opts := []option.RequestOption{
		option.WithBaseURL(api),
		option.WithAPIToken(token),
		option.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
	}
	c.records = cfdns.NewRecordService(opts...)
	c.zones = zones.NewZoneService(opts...)
	return c, nil
}

// Point makes name's A and AAAA records exactly addrs: a record that
// already holds a wanted address is kept (its TTL and proxying corrected),
// one that holds an address no longer wanted is rewritten with a new one
// or deleted, and the addresses left over are created. Deletions come last,
// so the name always resolves. Then the records are listed again to check.
func (c *cloudflare) Point(ctx context.Context, name string, addrs []netip.Addr, ttl time.Duration) error {
	recs, err := newRecords(name, addrs, ttl)
	if err != nil {
		return fmt.Errorf("cloudflare: %w", err)
	}
	if ttl < cloudflareMinTTL {
		return fmt.Errorf("cloudflare: TTL %v is shorter than Cloudflare's shortest, %v", ttl, cloudflareMinTTL)
	}
	zoneID, err := c.findZone(ctx, recs.name)
	if err != nil {
		return fmt.Errorf("cloudflare: %w", err)
	}
	have, err := c.list(ctx, zoneID, recs.name)
	if err != nil {
		return fmt.Errorf("cloudflare: %w", err)
	}
	for _, p := range plan(have, recs) {
		if err := c.apply(ctx, zoneID, recs, p); err != nil {
			return fmt.Errorf("cloudflare: %s: %w", p, err)
		}
	}
	have, err = c.list(ctx, zoneID, recs.name)
	if err != nil {
		return fmt.Errorf("cloudflare: checking the new records: %w", err)
	}
	if len(plan(have, recs)) != 0 {
		return fmt.Errorf("cloudflare: the API accepted the changes but lists %s as %v", host(recs.name), have)
	}
	return nil
}

// host is name as Cloudflare writes it: no final dot.
func host(fqdn string) string { return strings.TrimSuffix(fqdn, ".") }

// findZone returns the zone ID: FERRY_DNS_CLOUDFLARE_ZONE_ID, else the
// zone named FERRY_DNS_ZONE, else the longest suffix of name that is a
// zone of the token's account.
func (c *cloudflare) findZone(ctx context.Context, name string) (string, error) {
	if c.zoneID != "" {
		return c.zoneID, nil
	}
	candidates := []string{c.zoneName}
	if c.zoneName == "" {
		candidates = nil
		labels := strings.Split(host(name), ".")
		// Down to the last two labels: a zone is never a TLD alone.
		for i := 0; i+2 <= len(labels); i++ {
			candidates = append(candidates, strings.Join(labels[i:], ".")+".")
		}
	}
	for _, zone := range candidates {
		var q zones.ZoneListParams
		q.Name.Value, q.Name.Present = host(zone), true
		page, err := c.zones.List(ctx, q)
		if err != nil {
			return "", explainCloudflare("finding zone "+host(zone), err)
		}
		for _, z := range page.Result {
			if strings.EqualFold(z.Name, host(zone)) {
				return z.ID, nil
			}
		}
	}
	if c.zoneName != "" {
		return "", fmt.Errorf("no zone %s in the token's account (%s)", host(c.zoneName), VarZone)
	}
	return "", fmt.Errorf("no zone of the token's account holds %s (set %s or %s)", host(name), VarZone, VarCloudflareZoneID)
}

// cfRecord is the part of a Cloudflare record Point looks at.
type cfRecord struct {
	id      string
	typ     string // "A" or "AAAA"
	addr    netip.Addr
	ttl     uint32
	proxied bool
}

func (r cfRecord) String() string {
	return fmt.Sprintf("%s %s ttl=%d proxied=%v", r.typ, r.addr, r.ttl, r.proxied)
}

// list returns name's A and AAAA records. It pages by hand, because
// cloudflare-go's auto-pager asks for the next pages without the caller's
// context.
func (c *cloudflare) list(ctx context.Context, zoneID, name string) ([]cfRecord, error) {
	const perPage = 100
	var out []cfRecord
	for page := 1; ; page++ {
		var q cfdns.RecordListParams
		q.ZoneID.Value, q.ZoneID.Present = zoneID, true
		q.Name.Value.Exact.Value, q.Name.Value.Exact.Present, q.Name.Present = host(name), true, true
		q.Page.Value, q.Page.Present = float64(page), true
		q.PerPage.Value, q.PerPage.Present = perPage, true
		res, err := c.records.List(ctx, q)
		if err != nil {
			return nil, explainCloudflare("listing the records of "+host(name), err)
		}
		for _, r := range res.Result {
			if !strings.EqualFold(host(r.Name), host(name)) {
				continue
			}
			if r.Type != cfdns.RecordResponseTypeA && r.Type != cfdns.RecordResponseTypeAAAA {
				continue
			}
			a, err := netip.ParseAddr(r.Content)
			if err != nil {
				return nil, fmt.Errorf("record %s of %s holds %q, not an address", r.ID, host(name), r.Content)
			}
			out = append(out, cfRecord{id: r.ID, typ: string(r.Type), addr: a.Unmap(), ttl: uint32(r.TTL), proxied: r.Proxied})
		}
		if len(res.Result) < perPage || page == 50 {
			return out, nil
		}
	}
}
