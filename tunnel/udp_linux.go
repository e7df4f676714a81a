package tunnel

import (
	"fmt"
	"net"
	"syscall"
)

// udpBufferWant is what quic-go asks of the kernel for each UDP socket's
// receive and send buffers.
const udpBufferWant = 7 << 20

// UDPBufferAdvice tries what quic-go will try for its sockets (the plain
// and, with CAP_NET_ADMIN, the forced buffer size) on a scratch socket, and
// returns one line saying what to set when the kernel refuses; empty when
// all is well. quic-go's own warning is raw and repeated per role; this one
// names the fix.
func UDPBufferAdvice() string {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return ""
	}
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var rcv, snd int
	raw.Control(func(fd uintptr) {
		for _, o := range []struct{ opt, force int }{{syscall.SO_RCVBUF, syscall.SO_RCVBUFFORCE}, {syscall.SO_SNDBUF, syscall.SO_SNDBUFFORCE}} {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o.opt, udpBufferWant)
			if n, _ := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, o.opt); n < udpBufferWant {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o.force, udpBufferWant)
			}
		}
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	if rcv >= udpBufferWant && snd >= udpBufferWant {
		return ""
	}
	return fmt.Sprintf("UDP buffers are %d KiB (receive) and %d KiB (send), below the %d KiB QUIC wants for speed: "+
		"run sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000 (and add them to /etc/sysctl.conf), or run as root",
		rcv/1024, snd/1024, udpBufferWant/1024)
}
