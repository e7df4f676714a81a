package dnstun

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Server is the authoritative server of a zone that answers tunnel queries
// with what its sessions have queued downstream, and every other query as
// an ordinary authoritative server does. It is a net.PacketConn to the
// reliable layer above (kcp-go's listener): ReadFrom returns the
// datagrams of queries, from a SessionAddr per session, and WriteTo queues
// datagrams for a session's next answers.
//
// The zero value is not usable: set Zone and Key, then call Serve.
type Server struct {
	Zone Zone
	Key  []byte // from Key(secret)
	// Addr, when valid, is what ZONE and ns.ZONE have as A or AAAA record:
	// the server's public address, as the parent zone's glue has it.
	Addr netip.Addr
	// Hold is how long a query waits for something to send before an empty
	// answer; 0 means DefaultHold.
	Hold time.Duration
	// MaxSessions caps the sessions kept at once (0: DefaultMaxSessions);
	// beyond it a new session's queries get ordinary answers.
	MaxSessions int
	// MaxQueued caps a session's downstream bytes waiting for a query (0:
	// DefaultMaxQueued, 0.7 s of answers of 1232 bytes at 100 a second);
	// beyond it datagrams are dropped, and the reliable layer sends them
	// again, slower.
	MaxQueued int
	// Idle is how long a session lives without a query (0: DefaultIdle).
	Idle time.Duration
	Log  *slog.Logger

	mu       sync.Mutex
	pc       net.PacketConn
	sessions map[SessionID]*serverSession
	ended    map[SessionID]time.Time // until when a session ended stays refused
	closed   bool
	done     chan struct{}
	in       chan datagram // upstream, for ReadFrom
	serving  sync.WaitGroup

	// Counters, for tests and metrics: every query; the tunnel queries
	// taken; the ordinary answers (NOERROR, nothing) given to what is not a
	// tunnel query taken, forged and replayed ones included; the datagrams
	// dropped at a full queue.
	Queries, TunnelQueries, Ordinary, Dropped counter
}

// Defaults of Server's fields.
const (
	// DefaultHold is under the 376 ms that unbound waits for an unknown
	// server, and under its later timeouts, which start at 50 ms above
	// the measured round trip.
	DefaultHold        = 200 * time.Millisecond
	DefaultMaxSessions = 64
	DefaultMaxQueued   = 64 << 10
	DefaultIdle        = time.Minute
	// maxHeld caps the queries one session may have held at once: a
	// client keeps a few polls out; more come from a resolver's retries.
	maxHeld = 8
	// replayWindow is how far behind the newest a query's sequence number
	// may be and still be taken, once.
	replayWindow = 256
	// maxEnded caps the ended sessions remembered against replays.
	maxEnded = 4096
	// MaxSkew is how far a new session's start may be from the server's
	// clock: it must start near now, so that a replay of its first query
	// after it ended is refused (its ID is remembered until then).
	MaxSkew = 2 * time.Minute
	inQueue = 1024
)

type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

// Load is the count so far.
func (c *counter) Load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

type datagram struct {
	b    []byte
	from SessionAddr
}

// SessionAddr is the address of a session's datagrams: its ID.
type SessionAddr SessionID

func (SessionAddr) Network() string  { return "dns" }
func (a SessionAddr) String() string { return SessionID(a).String() }

// serverSession is one client's state; its fields are under Server.mu.
type serverSession struct {
	id      SessionID
	seen    time.Time
	highest uint32
	window  [replayWindow / 64]uint64 // bit i: highest-i was seen
	queue   [][]byte
	queued  int // bytes
	held    []*heldQuery
	mtu     int // the downstream datagram the first query's answer size allows
}

// heldQuery is a query waiting for downstream data, or its hold's end.
type heldQuery struct {
	seq   uint32
	a     *answerBuilder
	reply func([]byte)
	timer *time.Timer
	done  bool
}

func (s *Server) init() {
	if s.sessions == nil {
		s.sessions = make(map[SessionID]*serverSession)
		s.ended = make(map[SessionID]time.Time)
		s.done = make(chan struct{})
		s.in = make(chan datagram, inQueue)
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
	}
}

// Serve answers the queries that pc receives until Close. It returns
// net.ErrClosed after Close.
func (s *Server) Serve(pc net.PacketConn) error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.pc = pc
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if s.isClosed() {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		q := append([]byte(nil), buf[:n]...)
		s.Handle(q, func(resp []byte) { pc.WriteTo(resp, from) })
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Handle answers the query q by calling reply at most once, now or, for a
// tunnel query held for data, later. It never blocks.
func (s *Server) Handle(q []byte, reply func([]byte)) {
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	s.Queries.add()
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		// As a server does: FORMERR when the header can be read; nothing
		// for what is not DNS at all.
		if len(q) >= 12 && q[2]&0x80 == 0 {
			h := new(dns.Msg)
			h.Id = uint16(q[0])<<8 | uint16(q[1])
			h.Response, h.Rcode = true, dns.RcodeFormatError
			h.Opcode = int(q[2]>>3) & 0xf
			if b, err := h.Pack(); err == nil {
				reply(b)
			}
		}
		return
	}
	if m.Response {
		return // answers are not answered
	}
	if m.Opcode != dns.OpcodeQuery {
		s.replyCode(m, dns.RcodeNotImplemented, reply)
		return
	}
	if len(m.Question) != 1 {
		s.replyCode(m, dns.RcodeFormatError, reply)
		return
	}
	qu := m.Question[0]
	name := dns.CanonicalName(qu.Name)
	switch {
	case qu.Qclass != dns.ClassINET && qu.Qclass != dns.ClassANY:
		s.replyCode(m, dns.RcodeRefused, reply)
	case !dns.IsSubDomain(string(s.Zone), name):
		// Not ours: an authoritative server refuses, and does not recurse.
		s.replyCode(m, dns.RcodeRefused, reply)
	case name == string(s.Zone) || name == "ns."+string(s.Zone):
		s.replyZone(m, name, reply)
	case qu.Qtype == dns.TypeTXT:
		s.tunnel(m, reply)
	default:
		s.replyNoData(m, reply)
	}
}

// limit is the answer size q allows: its EDNS size, or 512.
func limit(q *dns.Msg) int {
	if o := q.IsEdns0(); o != nil {
		return min(max(int(o.UDPSize()), MinAnswer), MaxAnswer)
	}
	return MinAnswer
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: string(s.Zone), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns:  "ns." + string(s.Zone), Mbox: "hostmaster." + string(s.Zone),
		Serial: 1, Refresh: 7200, Retry: 3600, Expire: 1209600, Minttl: 60,
	}
}

func (s *Server) reply(m *dns.Msg, build func(r *dns.Msg), reply func([]byte)) {
	r := new(dns.Msg)
	r.SetReply(m)
	r.Authoritative = true
	r.Compress = true
	if m.IsEdns0() != nil {
		r.SetEdns0(1232, false)
	}
	if build != nil {
		build(r)
	}
	// An answer that does not fit is sent truncated, as servers do; the
	// zone's own records always fit in 512.
	r.Truncate(limit(m))
	if b, err := r.Pack(); err == nil {
		reply(b)
	}
}

func (s *Server) replyCode(m *dns.Msg, rcode int, reply func([]byte)) {
	s.reply(m, func(r *dns.Msg) {
		r.Rcode = rcode
		r.Authoritative = rcode != dns.RcodeRefused && rcode != dns.RcodeNotImplemented && rcode != dns.RcodeFormatError
	}, reply)
}

// replyNoData is the answer to any name under the zone that has no record
// of the type asked: NOERROR, nothing, and the SOA for negative caching.
// Every name under the zone exists to the server (an empty non-terminal,
// as far as a resolver can tell), so that a resolver's minimised queries
// (RFC 9156) for a tunnel name's parents lead on to the name itself.
func (s *Server) replyNoData(m *dns.Msg, reply func([]byte)) {
	s.Ordinary.add()
	s.reply(m, func(r *dns.Msg) { r.Ns = []dns.RR{s.soa()} }, reply)
}

// replyZone answers for the zone's apex and its name server: SOA, NS, and
// A or AAAA when Addr is set.
func (s *Server) replyZone(m *dns.Msg, name string, reply func([]byte)) {
	qt := m.Question[0].Qtype
	var ans []dns.RR
	hdr := func(t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: m.Question[0].Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	ns := &dns.NS{Hdr: hdr(dns.TypeNS, 3600), Ns: "ns." + string(s.Zone)}
	apex := name == string(s.Zone)
	if apex && (qt == dns.TypeSOA || qt == dns.TypeANY) {
		soa := s.soa().(*dns.SOA)
		soa.Hdr.Name = m.Question[0].Name
		ans = append(ans, soa)
	}
	if apex && (qt == dns.TypeNS || qt == dns.TypeANY) {
		ans = append(ans, ns)
	}
	if s.Addr.IsValid() && (qt == dns.TypeA && s.Addr.Is4() || qt == dns.TypeAAAA && s.Addr.Is6() || qt == dns.TypeANY) {
		if s.Addr.Is4() {
			ans = append(ans, &dns.A{Hdr: hdr(dns.TypeA, 3600), A: s.Addr.AsSlice()})
		} else {
			ans = append(ans, &dns.AAAA{Hdr: hdr(dns.TypeAAAA, 3600), AAAA: s.Addr.AsSlice()})
		}
	}
	if len(ans) == 0 {
		s.replyNoData(m, reply)
		return
	}
	s.reply(m, func(r *dns.Msg) {
		r.Answer = ans
		if qt != dns.TypeNS && qt != dns.TypeANY {
			r.Ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: string(s.Zone), Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: "ns." + string(s.Zone)}}
		}
	}, reply)
}

// tunnel answers a TXT query under the zone: a tunnel query's with the
// session's queued datagrams, anything else's as an unknown name's.
func (s *Server) tunnel(m *dns.Msg, reply func([]byte)) {
	u, err := s.Zone.DecodeName(s.Key, m.Question[0].Name)
	if err != nil {
		s.replyNoData(m, reply)
		return
	}
	lim := min(limit(m), max(u.Cap, MinAnswer))
	a, err := newAnswer(m, lim)
	if err != nil {
		s.replyNoData(m, reply)
		return
	}
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	ss := s.session(u, now, a)
	if ss != nil && ss.retried(u.Seq, a, reply) {
		s.mu.Unlock()
		return
	}
	if ss == nil || !ss.accept(u.Seq) {
		s.mu.Unlock()
		s.replyNoData(m, reply)
		return
	}
	s.TunnelQueries.add()
	ss.seen = now
	if len(u.Data) > 0 {
		select {
		case s.in <- datagram{b: u.Data, from: SessionAddr(u.Session)}:
		default:
			s.Dropped.add()
		}
	}
	h := &heldQuery{seq: u.Seq, a: a, reply: reply}
	if len(ss.queue) > 0 || s.hold() <= 0 {
		s.fill(ss, h)
		s.mu.Unlock()
		return
	}
	if len(ss.held) >= maxHeld {
		// The oldest makes room: it is answered empty now.
		old := ss.held[0]
		ss.held = ss.held[1:]
		s.fill(ss, old)
	}
	ss.held = append(ss.held, h)
	h.timer = time.AfterFunc(s.hold(), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if h.done {
			return
		}
		for i, x := range ss.held {
			if x == h {
				ss.held = append(ss.held[:i], ss.held[i+1:]...)
				break
			}
		}
		s.fill(ss, h)
	})
	s.mu.Unlock()
}

func (s *Server) hold() time.Duration {
	if s.Hold == 0 {
		return DefaultHold
	}
	return s.Hold
}

// session finds or starts u's session, or returns nil when u may not start
// one. It runs under s.mu.
func (s *Server) session(u Upstream, now time.Time, a *answerBuilder) *serverSession {
	if ss := s.sessions[u.Session]; ss != nil {
		return ss
	}
	s.expire(now)
	if _, ok := s.ended[u.Session]; ok {
		return nil
	}
	start := time.Unix(int64(uint32(u.Session[4])<<24|uint32(u.Session[5])<<16|uint32(u.Session[6])<<8|uint32(u.Session[7])), 0)
	if start.Sub(now).Abs() > MaxSkew || len(s.sessions) >= cmpOr(s.MaxSessions, DefaultMaxSessions) {
		return nil
	}
	// kcp's datagrams are cut to this before they are queued, and each
	// must fit any later answer: the room the first query's size leaves
	// in the answer to the longest name.
	ss := &serverSession{id: u.Session, seen: now, highest: u.Seq - 1, mtu: s.Zone.MaxDownstream(a.limit)}
	s.sessions[u.Session] = ss
	s.Log.Debug("dns tunnel session started", "sessions", len(s.sessions))
	return ss
}

func cmpOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// expire ends the sessions idle for longer than Idle, and forgets ended
// ones past the skew. It runs under s.mu.
func (s *Server) expire(now time.Time) {
	idle := s.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	for id, ss := range s.sessions {
		if now.Sub(ss.seen) > idle {
			s.end(ss, now)
			delete(s.sessions, id)
		}
	}
	for id, until := range s.ended {
		if now.After(until) {
			delete(s.ended, id)
		}
	}
}

func (s *Server) end(ss *serverSession, now time.Time) {
	for _, h := range ss.held {
		s.fill(nil, h)
	}
	ss.held, ss.queue, ss.queued = nil, nil, 0
	if len(s.ended) < maxEnded {
		s.ended[ss.id] = now.Add(2 * MaxSkew)
	}
}

// retried takes the query of seq when one of that seq is held: the
// resolver gave up waiting for it and asks again (unbound does after as
// little as 50 ms with a server it knows to be fast), and would ignore the
// held one's answer. The held query is answered to the new one instead,
// and goes on waiting. It runs under Server.mu.
func (ss *serverSession) retried(seq uint32, a *answerBuilder, reply func([]byte)) bool {
	for _, h := range ss.held {
		if h.seq == seq && !h.done {
			h.a, h.reply = a, reply
			return true
		}
	}
	return false
}

// accept reports whether seq is new: ahead of the newest seen, or within
// replayWindow behind it and not seen yet; and marks it seen.
func (ss *serverSession) accept(seq uint32) bool {
	d := int32(seq - ss.highest)
	if d > 0 {
		ss.shift(uint32(d))
		ss.highest = seq
		ss.window[0] |= 1
		return true
	}
	back := uint32(-d)
	if back >= replayWindow {
		return false
	}
	w, bit := back/64, uint64(1)<<(back%64)
	if ss.window[w]&bit != 0 {
		return false
	}
	ss.window[w] |= bit
	return true
}

// shift moves the window n places: bit i becomes bit i+n.
func (ss *serverSession) shift(n uint32) {
	if n >= replayWindow {
		ss.window = [replayWindow / 64]uint64{}
		return
	}
	words, bits := int(n/64), n%64
	var w [replayWindow / 64]uint64
	for i := len(w) - 1; i >= words; i-- {
		w[i] = ss.window[i-words] << bits
		if bits > 0 && i-words-1 >= 0 {
			w[i] |= ss.window[i-words-1] >> (64 - bits)
		}
	}
	ss.window = w
}

// fill answers h with what ss has queued that fits, and sends it. ss may be
// nil: an empty answer. It runs under s.mu.
func (s *Server) fill(ss *serverSession, h *heldQuery) {
	if h.done {
		return
	}
	h.done = true
	if h.timer != nil {
		h.timer.Stop()
	}
	if ss != nil {
		for len(ss.queue) > 0 && h.a.add(ss.queue[0]) {
			ss.queued -= len(ss.queue[0])
			ss.queue[0] = nil
			ss.queue = ss.queue[1:]
		}
	}
	if b, err := h.a.pack(); err == nil {
		h.reply(b)
	}
}

// ReadFrom returns the next upstream datagram and its session.
func (s *Server) ReadFrom(p []byte) (int, net.Addr, error) {
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	select {
	case d := <-s.in:
		return copy(p, d.b), d.from, nil
	case <-s.done:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo queues p for the session addr names, and answers a query of it
// held waiting. A datagram for a session that has ended, one too large
// for its answers, or one past MaxQueued, is dropped.
func (s *Server) WriteTo(p []byte, addr net.Addr) (int, error) {
	a, ok := addr.(SessionAddr)
	if !ok {
		return 0, errors.New("dnstun: not a session's address")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	ss := s.sessions[SessionID(a)]
	if ss == nil || len(p) > ss.mtu || ss.queued+len(p) > cmpOr(s.MaxQueued, DefaultMaxQueued) {
		s.Dropped.add()
		return len(p), nil
	}
	ss.queue = append(ss.queue, append([]byte(nil), p...))
	ss.queued += len(p)
	for len(ss.held) > 0 && len(ss.queue) > 0 {
		h := ss.held[0]
		ss.held = ss.held[1:]
		s.fill(ss, h)
	}
	return len(p), nil
}

// MTU is the largest downstream datagram of the session addr names, 0 for
// none: what the reliable layer must cut its datagrams to.
func (s *Server) MTU(addr net.Addr) int {
	a, ok := addr.(SessionAddr)
	if !ok {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[SessionID(a)]; ss != nil {
		return ss.mtu
	}
	return 0
}

// Close stops Serve, ReadFrom and every held query (answered empty), and
// closes the socket Serve was given.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for _, ss := range s.sessions {
		for _, h := range ss.held {
			h.done = true
			h.timer.Stop()
		}
		ss.held = nil
	}
	pc := s.pc
	s.mu.Unlock()
	var err error
	if pc != nil {
		err = pc.Close()
	}
	s.serving.Wait()
	return err
}

func (s *Server) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil {
		return s.pc.LocalAddr()
	}
	return SessionAddr{}
}

// kcp-go sets no deadlines on a listener's connection; reads end by Close.
func (s *Server) SetDeadline(time.Time) error      { return nil }
func (s *Server) SetReadDeadline(time.Time) error  { return nil }
func (s *Server) SetWriteDeadline(time.Time) error { return nil }
