//go:build !linux

package tunnel

// UDPBufferAdvice gives advice on Linux only.
func UDPBufferAdvice() string { return "" }
