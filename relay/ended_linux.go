package relay

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpPeerEnded polls c's socket without waiting: POLLRDHUP is set once the
// peer's FIN has arrived, even with bytes before it still unread, and
// POLLERR once a reset has.
func tcpPeerEnded(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var ended error
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err != nil || n == 0 {
			return
		}
		switch ev := fds[0].Revents; {
		case ev&unix.POLLERR != 0:
			ended = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		case ev&(unix.POLLRDHUP|unix.POLLHUP) != 0:
			ended = io.EOF
		}
	})
	return ended
}
