// Package rawsock owns TCP connections whose reads and writes bypass the Go
// scheduler's system-call bookkeeping.
//
// Every read or write on a net.Conn enters the runtime's "in a system call"
// state. When the process had been idle, entering it wakes the runtime's
// monitor thread (sysmon), which then polls every 20 µs for a millisecond
// or more before it sleeps again. A webhook intake at light load goes idle
// and busy thousands of times a second, so on a small virtual machine,
// where waking a thread is expensive, those wake-ups cost more CPU than the
// requests themselves and add to every request's latency (README, "Speed").
//
// The sockets are non-blocking, so a read or write never blocks the thread:
// the scheduler loses nothing by not being told. Waiting still goes through
// the runtime's network poller (syscall.RawConn), so deadlines, Close and
// the other goroutines behave exactly as with a plain net.TCPConn.
package rawsock

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls. All
// other methods (deadlines, Close, addresses, options) are the TCPConn's.
type Conn struct {
	*net.TCPConn
	raw syscall.RawConn

	readMu sync.Mutex
	read   transfer

	writeMu sync.Mutex
	write   transfer
}

// transfer is the state of one Read or Write, kept in the Conn so that the
// callbacks given to the poller do not allocate per call.
type transfer struct {
	buf   []byte
	n     int
	errno syscall.Errno
	step  func(fd uintptr) bool
}

// Wrap returns c with raw reads and writes.
func Wrap(c *net.TCPConn) (*Conn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("rawsock: %w", err)
	}
	conn := &Conn{TCPConn: c, raw: raw}
	conn.read.step = conn.read.readOnce
	conn.write.step = conn.write.writeAll
	return conn, nil
}

// readOnce reads what is there; false means nothing was, so the poller
// waits for the socket to become readable and calls it again.
func (t *transfer) readOnce(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			t.n = int(n)
		default:
			t.errno = errno
		}
		return true
	}
}

// writeAll writes until buf is empty; false means the socket's buffer is
// full, so the poller waits for it to drain and calls it again.
func (t *transfer) writeAll(fd uintptr) bool {
	for len(t.buf) > 0 {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			t.n += int(n)
			t.buf = t.buf[n:]
		default:
			t.errno = errno
			return true
		}
	}
	return true
}

// Read reads like net.TCPConn.Read.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.transfer("read", &c.readMu, &c.read, c.raw.Read, p)
	if err == nil && n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write writes like net.TCPConn.Write: all of p, or an error.
func (c *Conn) Write(p []byte) (int, error) {
	return c.transfer("write", &c.writeMu, &c.write, c.raw.Write, p)
}

// transfer runs t's step on p through the poller (run is the RawConn's
// Read or Write), one call per direction at a time, and reports how many
// bytes moved.
func (c *Conn) transfer(op string, mu *sync.Mutex, t *transfer, run func(func(uintptr) bool) error, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	mu.Lock()
	defer mu.Unlock()
	t.buf, t.n, t.errno = p, 0, 0
	err := run(t.step)
	t.buf = nil
	switch {
	case err != nil:
		return t.n, c.opError(op, err)
	case t.errno != 0:
		return t.n, c.opError(op, os.NewSyscallError(op, t.errno))
	}
	return t.n, nil
}

// opError reports err as net.TCPConn would: a *net.OpError, so that
// callers' net.Error checks (Timeout) keep working.
func (c *Conn) opError(op string, err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		err = opErr.Err // the RawConn's own wrapping names a "raw-" op
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Listener accepts connections as *Conn.
type Listener struct {
	*net.TCPListener
}

// Listen wraps a TCP listener so that the connections it accepts are *Conn.
func Listen(ln *net.TCPListener) *Listener { return &Listener{TCPListener: ln} }

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	conn, err := Wrap(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}
