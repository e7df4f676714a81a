package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	cfdns "github.com/cloudflare/cloudflare-go/v6/dns"
)

// change is one API call of a plan: create (id empty), overwrite (id and
// addr) or delete (id, delete set).
type change struct {
	id     string
	addr   netip.Addr
	delete bool
}

func (c change) String() string {
	switch {
	case c.delete:
		return "deleting record " + c.id
	case c.id == "":
		return "creating a record for " + c.addr.String()
	}
	return "rewriting record " + c.id + " to " + c.addr.String()
}

// plan lists the calls that make have exactly recs: nothing when it is.
// Creations and rewrites come before deletions, so that the name keeps an
// address of each family it should have all along.
func plan(have []cfRecord, recs records) []change {
	var writes, deletes []change
	for _, fam := range []struct {
		typ  string
		want []netip.Addr
	}{{"A", recs.v4}, {"AAAA", recs.v6}} {
		var stale []cfRecord // records of this type not kept as they are
		kept := map[netip.Addr]bool{}
		for _, r := range have {
			if r.typ != fam.typ {
				continue
			}
			if slices.Contains(fam.want, r.addr) && !kept[r.addr] {
				kept[r.addr] = true
				if r.ttl != recs.ttl || r.proxied {
					writes = append(writes, change{id: r.id, addr: r.addr})
				}
				continue
			}
			stale = append(stale, r)
		}
		for _, a := range fam.want {
			if kept[a] {
				continue
			}
			if len(stale) > 0 {
				writes = append(writes, change{id: stale[0].id, addr: a})
				stale = stale[1:]
				continue
			}
			writes = append(writes, change{addr: a})
		}
		for _, r := range stale {
			deletes = append(deletes, change{id: r.id, delete: true})
		}
	}
	return append(writes, deletes...)
}

// apply makes one change's API call.
func (c *cloudflare) apply(ctx context.Context, zoneID string, recs records, ch change) error {
	var err error
	switch {
	case ch.delete:
		var p cfdns.RecordDeleteParams
		p.ZoneID.Value, p.ZoneID.Present = zoneID, true
		_, err = c.records.Delete(ctx, ch.id, p)
	case ch.id == "":
		var p cfdns.RecordNewParams
		p.ZoneID.Value, p.ZoneID.Present = zoneID, true
		p.Body = recordBody(recs, ch.addr)
		_, err = c.records.New(ctx, p)
	default:
		var p cfdns.RecordUpdateParams
		p.ZoneID.Value, p.ZoneID.Present = zoneID, true
		p.Body = recordBody(recs, ch.addr)
		_, err = c.records.Update(ctx, ch.id, p)
	}
	if err != nil {
		return explainCloudflare("", err)
	}
	return nil
}

// recordBody is a whole A or AAAA record for addr: DNS only (proxied
// would hand phones Cloudflare's addresses, which do not speak WhatsApp's
// protocol), with recs' TTL.
func recordBody(recs records, addr netip.Addr) interface {
	cfdns.RecordNewParamsBodyUnion
	cfdns.RecordUpdateParamsBodyUnion
} {
	if addr.Is4() {
		var b cfdns.ARecordParam
		b.Name.Value, b.Name.Present = host(recs.name), true
		b.Type.Value, b.Type.Present = cfdns.ARecordTypeA, true
		b.Content.Value, b.Content.Present = addr.String(), true
		b.TTL.Value, b.TTL.Present = cfdns.TTL(recs.ttl), true
		b.Proxied.Value, b.Proxied.Present = false, true
		return b
	}
	var b cfdns.AAAARecordParam
	b.Name.Value, b.Name.Present = host(recs.name), true
	b.Type.Value, b.Type.Present = cfdns.AAAARecordTypeAAAA, true
	b.Content.Value, b.Content.Present = addr.String(), true
	b.TTL.Value, b.TTL.Present = cfdns.TTL(recs.ttl), true
	b.Proxied.Value, b.Proxied.Present = false, true
	return b
}

// explainCloudflare turns an API error into words: the status and
// Cloudflare's own messages, never the request's headers (the token).
func explainCloudflare(step string, err error) error {
	prefix := ""
	if step != "" {
		prefix = step + ": "
	}
	var apiErr *cfdns.Error
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%s%w", prefix, err)
	}
	var msgs []string
	for _, e := range apiErr.Errors {
		msgs = append(msgs, fmt.Sprintf("%s (code %d)", e.Message, e.Code))
	}
	detail := strings.Join(msgs, "; ")
	if detail == "" {
		detail = "no error message"
	}
	status := fmt.Sprintf("%d %s", apiErr.StatusCode, http.StatusText(apiErr.StatusCode))
	switch apiErr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%sCloudflare refused the API token (%s: %s): is it valid, with the Zone.DNS edit permission on this zone?", prefix, status, detail)
	}
	return fmt.Errorf("%sCloudflare answered %s: %s", prefix, status, detail)
}
