//go:build linux

package gateway

import "syscall"

// initPeek prepares c.idleClean: the descriptor of a TCP connection, and
// the function that peeks at it (made once, so that a check allocates
// nothing).
func (c *h1Conn) initPeek() {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.rc = rc
	c.peekFn = func(fd uintptr) {
		// MSG_PEEK leaves any octet where it is (the connection is closed
		// then anyway); MSG_DONTWAIT makes the call return at once. Only
		// EAGAIN says that nothing is there: a return of 0 is the
		// backend's FIN, 1 an octet no request asked for.
		_, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		c.peekClean = err == syscall.EAGAIN
	}
}

// idleClean reports whether nothing arrived on the idle connection c
// since its last response: no octet and no FIN. It costs one system call.
// Control, unlike Read, ignores the connection's deadline, which an idle
// connection keeps from its last exchange.
func (c *h1Conn) idleClean() bool {
	if c.rc == nil {
		return false
	}
	c.peekClean = false
	if err := c.rc.Control(c.peekFn); err != nil {
		return false
	}
	return c.peekClean
}
