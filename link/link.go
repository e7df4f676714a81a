// Package link makes the wa.me share link of a proxy, and draws it as a QR
// code that a phone can scan from a terminal.
package link

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"rsc.io/qr"

	"ferry/config"
)

// Ports are what the WhatsApp app needs besides the host.
type Ports struct {
	Chat    int
	ChatTLS bool
	Media   int
}

// DefaultPorts are the app's defaults: chat on 443 with TLS, media on 587.
var DefaultPorts = Ports{Chat: 443, ChatTLS: true, Media: 587}

// PortsOf picks the ports a phone should use from an edge's listeners: the
// first chat listener with TLS (else the first plain one), and the first
// media listener; with no media listener, the chat TLS port, which passes
// media through by its server name (unless ?decoy=off). PROXY protocol
// listeners sit behind a load balancer whose ports are not known here, so
// they count only when there is nothing else.
func PortsOf(listeners []config.Listener) Ports {
	p := Ports{}
	pick := func(proxy bool) {
		for _, l := range listeners {
			if l.ProxyProtocol() != proxy {
				continue
			}
			port := portOf(l.Addr)
			switch {
			case l.Route == "chat" && l.TLS() && !p.ChatTLS:
				p.Chat, p.ChatTLS = port, true
			case l.Route == "chat" && p.Chat == 0:
				p.Chat = port
			case l.Media() && p.Media == 0:
				p.Media = port
			}
		}
	}
	pick(false)
	if p.Chat == 0 || p.Media == 0 {
		pick(true)
	}
	if p.Media == 0 {
		for _, l := range listeners {
			if l.TLS() && !l.DecoyOff && portOf(l.Addr) == p.Chat && p.ChatTLS {
				p.Media = p.Chat
			}
		}
	}
	if p.Chat == 0 {
		p.Chat, p.ChatTLS = DefaultPorts.Chat, DefaultPorts.ChatTLS
	}
	if p.Media == 0 {
		p.Media = DefaultPorts.Media
	}
	return p
}

func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	n, _ := strconv.Atoi(addr[i+1:])
	return n
}

// URL is the share link that opens the app's proxy settings filled in.
func URL(host string, p Ports) string {
	// In the order of the app's own links, which url.Values would sort.
	return fmt.Sprintf("https://wa.me/proxy?host=%s&chatPort=%d&mediaPort=%d&chatTLS=%t",
		url.QueryEscape(host), p.Chat, p.Media, p.ChatTLS)
}

// QR encodes s as a QR code.
func QR(s string) (*qr.Code, error) {
	c, err := qr.Encode(s, qr.M)
	if err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	return c, nil
}

// WritePlain draws s as a QR code with block characters and no escape
// sequences, for output that is not a terminal: each character is two
// modules, one above the other, black modules drawn, so it reads as dark
// on light, as a QR code must.
func WritePlain(w io.Writer, s string) error {
	return draw(w, s, "\n", func(top, bottom bool) string {
		switch {
		case top && bottom:
			return "█"
		case top:
			return "▀"
		case bottom:
			return "▄"
		}
		return " "
	})
}

// WriteTerminal draws s as a QR code with text characters: each character
// is two modules, one above the other, in explicit black and white so that
// the code reads on dark and light terminals alike.
func WriteTerminal(w io.Writer, s string) error {
	return draw(w, s, "\x1b[0m\n", func(top, bottom bool) string {
		fg, bg := 97, 107 // white
		if top {
			fg = 30
		}
		if bottom {
			bg = 40
		}
		return fmt.Sprintf("\x1b[%d;%dm▀", fg, bg)
	})
}

const quiet = 2 // modules of white border

// draw writes s's QR code, with its quiet zone, two rows of modules to a
// line: cell gives the character for a module above another (true:
// black), and each line ends with eol.
func draw(w io.Writer, s, eol string, cell func(top, bottom bool) string) error {
	c, err := QR(s)
	if err != nil {
		return err
	}
	black := modules(c)
	var b strings.Builder
	n := c.Size + 2*quiet
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			b.WriteString(cell(black(x, y), black(x, y+1)))
		}
		b.WriteString(eol)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// modules says whether the module at x, y of c, counted from the quiet
// zone's corner, is black.
func modules(c *qr.Code) func(x, y int) bool {
	return func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x >= 0 && y >= 0 && x < c.Size && y < c.Size && c.Black(x, y)
	}
}
