package tunnel

import (
	"context"
	"errors"
	"io"
	"time"
)

// PeerEnded reads nothing: a read of no bytes returns at once what the
// stream's state says (go-yamux checks its state before it waits), and a
// deadline in the past keeps it from waiting for data on an open stream.
// The relay's read deadline is put back after.
func (s *yamuxStream) PeerEnded() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Stream.SetReadDeadline(time.Unix(1, 0))
	_, err := s.Stream.Read(nil)
	s.Stream.SetReadDeadline(s.readDeadline)
	return peerEnded(resetError(err))
}

// SetReadDeadline is kept for PeerEnded to put back.
func (s *yamuxStream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readDeadline = t
	return s.Stream.SetReadDeadline(t)
}

func (s *yamuxStream) SetDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readDeadline, s.writeDeadline = t, t
	return s.Stream.SetDeadline(t)
}

// PeerEnded relies on quic-go's Read of no bytes, which reports a reset or
// a consumed FIN and returns without waiting.
func (s *quicStream) PeerEnded() error {
	if err := s.conn.Context().Err(); err != nil {
		// The connection's end (an idle timeout, a transport error) is
		// not reported by a stream's Read of no bytes.
		return &streamReset{err: context.Cause(s.conn.Context())}
	}
	_, err := s.Stream.Read(nil)
	if err != nil && err != io.EOF {
		err = quicResetError(err)
	}
	return peerEnded(err)
}

// peerEnded keeps, of a probing read's error, what PeerEnded reports: a
// deadline or any other error that is no reset tells nothing.
func peerEnded(err error) error {
	if err == io.EOF || errors.Is(err, ErrStreamReset) {
		return err
	}
	return nil
}
