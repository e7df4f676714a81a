package bench

import (
	"context"
	"encoding/binary"
	"net"
	"time"
)

// NonReaders is the edge's memory with clients that stop reading while
// their targets send: phones on a bad network fetching a video.
type NonReaders struct {
	Ferry     string `json:"ferry"` // this, or previous
	Transport string `json:"transport"`
	Clients   int    `json:"clients"`
	EdgeRSS0  int64  `json:"edge_rss_start_kib"`
	EdgeRSS   int64  `json:"edge_rss_peak_kib"` // once the targets could push no more
}

// NonReadingClients is how many clients NonReaders holds, all from one
// address, as the issue that asked for the figure measured.
const NonReadingClients = 200

// measureNonReaders opens NonReadingClients downloads of 1 GiB each over
// tr and reads none of them, and reports the edge's RSS once it has
// stopped growing for a second: what the tunnel, the kernel and the
// buffers let the targets push.
func measureNonReaders(ctx context.Context, bin, label, tr string, targets map[string]string) (NonReaders, error) {
	nr := NonReaders{Ferry: label, Transport: tr, Clients: NonReadingClients}
	pair, err := startPair(ctx, bin, tr, targets, "")
	if err != nil {
		return nr, err
	}
	defer pair.stop()
	pid := pair.edge.pid()
	nr.EdgeRSS0 = rssKiB(pid)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range NonReadingClients {
		c, err := net.Dial("tcp", pair.addrs[sourceSvc])
		if err != nil {
			return nr, err
		}
		conns = append(conns, c)
		if err := binary.Write(c, binary.BigEndian, int64(1<<30)); err != nil {
			return nr, err
		}
	}
	steady := time.Now()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && time.Since(steady) < time.Second; {
		time.Sleep(100 * time.Millisecond) // sampling /proc
		if rss := rssKiB(pid); rss > nr.EdgeRSS {
			nr.EdgeRSS, steady = rss, time.Now()
		}
	}
	return nr, nil
}
