package dnsupdate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errNXDomain is an answer that the name does not exist: an error to an
// update, an answer (no records) to a query.
var errNXDomain = errors.New("no such name (NXDOMAIN)")

// exchange signs m with the key, sends it to the server and checks the
// answer's TSIG and rcode. The answer is returned with errNXDomain too.
// zone is named in the errors of an update.
func (u *rfc2136) exchange(ctx context.Context, m *dns.Msg, zone string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	m.SetTsig(u.key.name, u.key.algorithm, 300, time.Now().Unix())
	c := &dns.Client{
		Net:        u.transport,
		Timeout:    u.timeout,
		TsigSecret: map[string]string{u.key.name: u.key.secret},
	}
	r, _, err := c.ExchangeContext(ctx, m, u.server)
	if r == nil {
		var ne net.Error
		switch {
		case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
			return nil, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), ctx.Err() != nil:
			return nil, fmt.Errorf("no answer over %s within %v: is %s the zone's primary, and reachable from here over %s?", u.transport, u.timeout, u.server, strings.ToUpper(u.transport))
		}
		return nil, fmt.Errorf("asking over %s: %w", u.transport, err)
	}
	// A TSIG error in the answer comes unsigned (the server could not
	// sign with a key it does not know or cannot check), which is why it is
	// read before the signature's own error.
	if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		if t.Error == dns.RcodeBadTime {
			return nil, fmt.Errorf("the server refused the TSIG key %s: the clocks differ by more than 5 minutes (BADTIME); is this machine's clock right?", u.key)
		}
		return nil, fmt.Errorf("the server refused the TSIG key %s: wrong secret or algorithm? (%s)", u.key, rcodeName(int(t.Error)))
	}
	if r.Rcode == dns.RcodeNotAuth && m.Opcode == dns.OpcodeUpdate {
		// BIND answers an update signed with an unknown key so.
		return nil, fmt.Errorf("the server refused the TSIG key %s, or is not authoritative for zone %s (NOTAUTH): wrong name, secret or algorithm?", u.key, zone)
	}
	if err != nil {
		// The answer came but its signature did not check: someone else
		// answered, or the server signs with another secret.
		return nil, fmt.Errorf("the answer's TSIG signature does not verify with key %s: %v", u.key, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		return r, nil
	case dns.RcodeNameError:
		if m.Opcode == dns.OpcodeQuery {
			return r, errNXDomain
		}
	case dns.RcodeRefused:
		if m.Opcode == dns.OpcodeUpdate {
			return nil, fmt.Errorf("key %s is not allowed to update zone %s (REFUSED): see the zone's update-policy or allow-update", u.key, zone)
		}
		return nil, fmt.Errorf("the server refused the query (REFUSED): does it serve this zone?")
	case dns.RcodeNotZone:
		return nil, fmt.Errorf("the name is not in zone %s (NOTZONE)", zone)
	case dns.RcodeNotAuth:
		return nil, fmt.Errorf("the server is not authoritative for the name (NOTAUTH)")
	}
	return nil, fmt.Errorf("the server answered %s", rcodeName(r.Rcode))
}

func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rcode)
}
