//go:build !linux

package gateway

// initPeek does nothing here: only Linux has the non-blocking peek that
// idleClean needs to be cheap and exact.
func (c *h1Conn) initPeek() {}

// idleClean reports false: without a way to see, at no cost, whether the
// backend sent anything on an idle connection, none is used again (every
// request dials), which is slower but can never read a stale octet as
// the next response.
func (c *h1Conn) idleClean() bool { return false }
