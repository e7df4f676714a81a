package dnstun

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ClientConfig is what a Client needs. The zero value of each field but
// Zone, Key and Resolvers is a documented default.
type ClientConfig struct {
	Zone      Zone
	Key       []byte           // from Key(secret)
	Resolvers []netip.AddrPort // used in turn; those that stop answering are set aside
	// Rate caps each resolver's queries per second (0: DefaultRate), so
	// that a resolver does not take the tunnel for an attack and ban it.
	Rate float64
	// Cap is the largest answer asked for (0: DefaultCap); it is halved,
	// down to 512, each time a resolver truncates an answer.
	Cap int
	// MaxInflight caps the queries waiting for an answer (0:
	// DefaultMaxInflight).
	MaxInflight int
	// QueryTimeout is how long a query may go unanswered (0:
	// DefaultQueryTimeout); Fails of them in a row set a resolver aside
	// for SetAside (0: DefaultFails, DefaultSetAside), after which one
	// query at a time tries it: one more failure sets it aside for twice
	// as long, up to 5 minutes.
	QueryTimeout time.Duration
	Fails        int
	SetAside     time.Duration
	// MaxPollDelay is the longest wait between polls of an idle session
	// (0: DefaultMaxPollDelay): with the server's hold, the idle rate is
	// about one query per MaxPollDelay+Hold.
	MaxPollDelay time.Duration
}

// Defaults of ClientConfig.
const (
	// DefaultRate is what public resolvers take from one client without
	// complaint (Google's limit is 1,500 queries/s an address, Cloudflare's
	// unpublished but higher); ISP resolvers are unknown, so it is well
	// below. At 1232-byte answers it carries about 90 KB/s down, and 10 KB/s
	// up in names.
	DefaultRate         = 100
	DefaultCap          = 1232
	DefaultMaxInflight  = 32
	DefaultQueryTimeout = 2 * time.Second
	DefaultFails        = 2
	DefaultSetAside     = 30 * time.Second
	DefaultMaxPollDelay = time.Second
	firstPollDelay      = 20 * time.Millisecond
	// For replyWait after a datagram went up, polls are at most
	// replyPollDelay apart: a chat message's answer should not wait for
	// an idle session's poll, a second away.
	replyWait      = time.Second
	replyPollDelay = 50 * time.Millisecond
)

// outQueue is how many datagrams may wait for a query: a fifth of a
// second's worth at the resolvers' rate limits. A longer queue holds
// datagrams past kcp's retransmission timeout, and it sends them again
// (measured: twice the queries, and chat round trips three times as long).
func (c *Client) outQueue() int {
	return max(16, int(c.rate()*float64(len(c.res))/5))
}

// Client sends datagrams in queries to resolvers and returns those of the
// answers: a net.PacketConn to the reliable layer above (kcp-go), whose
// one peer is the server at ServerAddr. WriteTo never blocks: a datagram
// beyond the queue is dropped, and the layer above sends it again.
type Client struct {
	cfg     ClientConfig
	session SessionID
	conn    net.PacketConn
	kick    chan struct{}
	in      chan []byte
	done    chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	seq       uint32
	cap       int
	out       [][]byte
	pending   map[uint16]*query
	res       []*resolver
	next      int // the resolver to try first
	wantPolls int // queries to keep out while answers bring data
	empty     int // empty answers in a row
	nextPoll  time.Time
	lastData  time.Time // when a datagram last went up
	closed    bool

	Sent, Answered, Timeouts, Truncated, Polls, Dropped, NoData atomic.Int64
}

type query struct {
	name string
	res  *resolver
	sent time.Time
}

// resolver is one resolver's state, under Client.mu.
type resolver struct {
	addr     net.Addr
	tokens   float64
	last     time.Time
	fails    int
	asideTil time.Time
	// aside is set from its setting aside until it answers again: once
	// asideTil has passed, one query at a time (probe) tries it.
	aside, probe bool
	asideFor     time.Duration
}

// ServerAddr is the address of a Client's one peer.
var ServerAddr net.Addr = SessionAddr{}

// NewClient starts a session with cfg's resolvers: a socket and two
// goroutines, until Close.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Resolvers) == 0 {
		return nil, errors.New("dnstun: no resolver")
	}
	if cfg.Zone == "" {
		return nil, errors.New("dnstun: no zone")
	}
	local := ":0"
	if allLoopback(cfg.Resolvers) {
		// Nothing but loopback to reach: listen nowhere else.
		local = "127.0.0.1:0"
		if cfg.Resolvers[0].Addr().Is6() {
			local = "[::1]:0"
		}
	}
	conn, err := net.ListenPacket("udp", local)
	if err != nil {
		return nil, fmt.Errorf("dnstun: %w", err)
	}
	c := &Client{
		cfg: cfg, conn: conn, kick: make(chan struct{}, 1), in: make(chan []byte, 1024), done: make(chan struct{}),
		cap: cmpOr(cfg.Cap, DefaultCap), pending: make(map[uint16]*query), wantPolls: 1,
	}
	rand.Read(c.session[:4])
	binary.BigEndian.PutUint32(c.session[4:], uint32(time.Now().Unix()))
	now := time.Now()
	for _, r := range cfg.Resolvers {
		c.res = append(c.res, &resolver{addr: net.UDPAddrFromAddrPort(r), tokens: c.burst(), last: now})
	}
	c.wg.Add(2)
	go c.send()
	go c.read()
	return c, nil
}

func allLoopback(rs []netip.AddrPort) bool {
	for _, r := range rs {
		if !r.Addr().IsLoopback() || r.Addr().Is6() != rs[0].Addr().Is6() {
			return false
		}
	}
	return true
}

func (c *Client) rate() float64 {
	if c.cfg.Rate <= 0 {
		return DefaultRate
	}
	return c.cfg.Rate
}

// burst is how many queries a resolver may get at once: a quarter of a
// second's worth, what 20 chats writing at once need.
func (c *Client) burst() float64 { return max(1, c.rate()/4) }

// MTU is the largest datagram WriteTo carries.
func (c *Client) MTU() int { return c.cfg.Zone.MaxData() }

// Window is how many datagrams the layer above should have unacknowledged
// at most: a quarter of a second's worth at the resolvers' rate limits, a
// round trip through a distant resolver. More would only wait in the
// queue, or be dropped from it.
func (c *Client) Window() int {
	return max(32, int(c.rate()*float64(len(c.res))/4))
}

// Cap is the answer size asked for now, lowered by truncated answers.
func (c *Client) Cap() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cap
}

// WriteTo queues p to go up in a query.
func (c *Client) WriteTo(p []byte, _ net.Addr) (int, error) {
	if len(p) > c.MTU() {
		return 0, fmt.Errorf("dnstun: a datagram of %d bytes exceeds the %d a query carries", len(p), c.MTU())
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if len(c.out) < c.outQueue() {
		c.out = append(c.out, append([]byte(nil), p...))
	} else {
		c.Dropped.Add(1)
	}
	c.mu.Unlock()
	c.wake()
	return len(p), nil
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// ReadFrom returns the next datagram of an answer.
func (c *Client) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-c.in:
		return copy(p, d), ServerAddr, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

// Close stops the client's goroutines and closes its socket.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	err := c.conn.Close()
	c.wg.Wait()
	return err
}

func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// kcp-go sets no deadline on its connection; reads end by Close.
func (c *Client) SetDeadline(time.Time) error      { return nil }
func (c *Client) SetReadDeadline(time.Time) error  { return nil }
func (c *Client) SetWriteDeadline(time.Time) error { return nil }

// send is the one goroutine that sends queries: datagrams as they come,
// and polls so that the server has queries to answer with.
func (c *Client) send() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := c.sendReady(time.Now())
		if wait == 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// sendReady sends a query if one is due and allowed, and returns 0, or how
// long to wait before another may be.
func (c *Client) sendReady(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return time.Hour
	}
	wait := c.expire(now)
	// Queries most likely lost (a dead resolver's) hold nothing back.
	fresh := c.fresh(now)
	data := len(c.out) > 0 && fresh < cmpOr(c.cfg.MaxInflight, DefaultMaxInflight)
	poll := !data && fresh < c.wantPolls
	if poll && now.Before(c.nextPoll) {
		wait = min(wait, c.nextPoll.Sub(now))
		poll = false
	}
	if !data && !poll && fresh > 0 {
		// A poll out now may turn stale: look again when it does.
		wait = min(wait, c.oldestFresh(now))
	}
	if !data && !poll {
		return wait
	}
	r, rwait := c.pick(now)
	if r == nil {
		return min(wait, rwait)
	}
	var d []byte
	if data {
		d = c.out[0]
		c.out[0] = nil
		c.out = c.out[1:]
		// The server may answer this one with data; polls start over.
		c.empty = 0
		c.lastData = now
	} else {
		c.Polls.Add(1)
	}
	name, err := c.cfg.Zone.EncodeName(c.cfg.Key, Upstream{Session: c.session, Seq: c.seq, Cap: c.cap, Data: d})
	c.seq++
	if err != nil {
		return 0 // a datagram WriteTo let through cannot be too long
	}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	m.SetEdns0(MaxAnswer, false)
	for {
		m.Id = dns.Id()
		if _, ok := c.pending[m.Id]; !ok {
			break
		}
	}
	b, err := m.Pack()
	if err != nil {
		return 0
	}
	c.pending[m.Id] = &query{name: name, res: r, sent: now}
	c.Sent.Add(1)
	// A write to a UDP socket does not block for long; a failed one is a
	// query that times out.
	c.conn.WriteTo(b, r.addr)
	return 0
}

// pollFresh is how long a query counts as a poll out: the server holds it
// for less, and a resolver passes its answer on within a round trip, so
// one older is most likely lost, and must not hold back the next poll
// until QueryTimeout (a dead resolver would stall every session for that
// long, at each of its queries).
const pollFresh = time.Second

// fresh counts the queries out for less than pollFresh. It runs under c.mu.
func (c *Client) fresh(now time.Time) int {
	n := 0
	for _, q := range c.pending {
		if now.Sub(q.sent) < pollFresh {
			n++
		}
	}
	return n
}

// oldestFresh is how long until the oldest fresh query turns stale. It
// runs under c.mu.
func (c *Client) oldestFresh(now time.Time) time.Duration {
	wait := time.Hour
	for _, q := range c.pending {
		if left := pollFresh - now.Sub(q.sent); left > 0 {
			wait = min(wait, left)
		}
	}
	return wait
}

// expire drops the queries unanswered past QueryTimeout, and returns how
// long until the next one would be. It runs under c.mu.
func (c *Client) expire(now time.Time) time.Duration {
	timeout := c.cfg.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	wait := time.Hour
	for id, q := range c.pending {
		left := q.sent.Add(timeout).Sub(now)
		if left > 0 {
			wait = min(wait, left)
			continue
		}
		delete(c.pending, id)
		c.Timeouts.Add(1)
		c.failed(q.res, now)
	}
	return wait
}

// failed counts a resolver's failure, and sets it aside at Fails in a row,
// or at once when it was being tried again: then for twice as long as
// before, up to maxSetAside.
func (c *Client) failed(r *resolver, now time.Time) {
	r.fails++
	if r.probe || r.fails >= cmpOr(c.cfg.Fails, DefaultFails) {
		aside := c.cfg.SetAside
		if aside <= 0 {
			aside = DefaultSetAside
		}
		if r.aside {
			aside = min(2*r.asideFor, maxSetAside)
		}
		r.aside, r.probe, r.asideFor = true, false, aside
		r.asideTil = now.Add(aside)
		r.fails = 0
	}
}

// answered marks r as answering.
func (r *resolver) answered() { r.fails, r.aside, r.probe = 0, false, false }

// maxSetAside caps how long a resolver that keeps failing is set aside.
const maxSetAside = 5 * time.Minute

// usable reports whether r may get a query now: it is not set aside, or
// its time aside is over and no other query tries it.
func (r *resolver) usable(now time.Time) bool {
	return !r.aside || !now.Before(r.asideTil) && !r.probe
}

// pick returns the next resolver in turn that is not set aside and has a
// token for a query, and takes the token; or nil and how long until one
// will have. While every resolver is set aside, they are all tried. It runs
// under c.mu.
func (c *Client) pick(now time.Time) (*resolver, time.Duration) {
	rate, burst := c.rate(), c.burst()
	up := 0
	for _, r := range c.res {
		r.tokens = min(burst, r.tokens+now.Sub(r.last).Seconds()*rate)
		r.last = now
		if r.usable(now) {
			up++
		}
	}
	wait := time.Hour
	for i := range c.res {
		r := c.res[(c.next+i)%len(c.res)]
		if up > 0 && !r.usable(now) {
			if r.aside && now.Before(r.asideTil) {
				wait = min(wait, r.asideTil.Sub(now))
			}
			continue
		}
		if r.tokens >= 1 {
			r.tokens--
			if r.aside {
				r.probe = true
			}
			c.next = (c.next + i + 1) % len(c.res)
			return r, 0
		}
		wait = min(wait, time.Duration((1-r.tokens)/rate*float64(time.Second))+time.Millisecond)
	}
	return nil, wait
}

// read is the one goroutine that reads answers.
func (c *Client) read() {
	defer c.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := c.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c.answer(buf[:n], from, time.Now())
	}
}

// answer takes one answer from a resolver.
func (c *Client) answer(b []byte, from net.Addr, now time.Time) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return
	}
	c.mu.Lock()
	q := c.pending[m.Id]
	if q == nil || from.String() != q.res.addr.String() || len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, q.name) {
		// Not an answer to a query of ours: a late one, or forged.
		c.mu.Unlock()
		return
	}
	delete(c.pending, m.Id)
	c.Answered.Add(1)
	ds, err := decodeMsg(m, q.name)
	switch {
	case errors.Is(err, errTruncated):
		c.Truncated.Add(1)
		c.cap = max(MinAnswer, c.cap/2/CapUnit*CapUnit)
		q.res.answered()
	case errors.Is(err, errNoTXT):
		// The server's answer to a query it did not take: the resolver
		// works, this query carried nothing.
		q.res.answered()
		c.NoData.Add(1)
	case err != nil:
		// SERVFAIL and the like: the resolver could not reach the server.
		c.failed(q.res, now)
	default:
		q.res.answered()
	}
	if len(ds) > 0 {
		// More is likely queued: poll at once, with one query more out.
		c.empty = 0
		c.wantPolls = min(c.wantPolls+1, cmpOr(c.cfg.MaxInflight, DefaultMaxInflight)/2)
		c.nextPoll = now
	} else {
		c.empty++
		c.wantPolls = max(1, c.wantPolls/2)
		maxDelay := c.cfg.MaxPollDelay
		if maxDelay <= 0 {
			maxDelay = DefaultMaxPollDelay
		}
		if now.Sub(c.lastData) < replyWait {
			// A reply to what went up is likely on its way.
			maxDelay = min(maxDelay, replyPollDelay)
		}
		d := firstPollDelay << min(c.empty-1, bits.Len(uint(maxDelay/firstPollDelay)))
		c.nextPoll = now.Add(min(d, maxDelay))
	}
	c.mu.Unlock()
	for _, d := range ds {
		select {
		case c.in <- append([]byte(nil), d...):
		default: // the layer above is behind; it asks again
		}
	}
	c.wake()
}
