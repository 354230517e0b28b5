package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// rawConn is a minimal HTTP/1.1 keep-alive client on one TCP connection,
// enough for a load generator: it sends prepared request bytes and reads a
// response with a Content-Length (or one that ends at connection close).
// It costs far less CPU per request than net/http's client, which matters
// when the load generator shares two cores with the server it measures.
type rawConn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
	reused  bool // the connection served a response already
	dials   int  // connections opened
	body    []byte
}

func newRawConn(addr string, timeout time.Duration) *rawConn {
	return &rawConn{addr: addr, timeout: timeout, body: make([]byte, 0, 4096)}
}

func (k *rawConn) close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// errNoResponse: the connection ended before the first octet of a
// response, which on a reused connection means the server closed it while
// idle; the request is sent again on a new one.
var errNoResponse = errors.New("connection closed before the response")

// do sends req and returns the status code and body. The body is valid
// until the next call.
func (k *rawConn) do(req []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		if k.c == nil {
			c, err := net.DialTimeout("tcp", k.addr, k.timeout)
			if err != nil {
				return 0, nil, err
			}
			k.c, k.reused = c, false
			k.dials++
			if k.br == nil {
				k.br = bufio.NewReaderSize(c, 16<<10)
			} else {
				k.br.Reset(c)
			}
		}
		k.c.SetDeadline(time.Now().Add(k.timeout))
		if _, err := k.c.Write(req); err != nil {
			reused := k.reused
			k.close()
			if reused && attempt == 0 {
				continue
			}
			return 0, nil, err
		}
		code, body, keep, err := k.read()
		if err != nil {
			reused := k.reused
			k.close()
			if reused && attempt == 0 && errors.Is(err, errNoResponse) {
				continue
			}
			return 0, nil, err
		}
		if keep {
			k.reused = true
		} else {
			k.close()
		}
		return code, body, nil
	}
}

// read reads one response: status line, headers, body.
func (k *rawConn) read() (code int, body []byte, keep bool, err error) {
	line, err := k.br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && (err == io.EOF || errors.Is(err, net.ErrClosed) || isReset(err)) {
			return 0, nil, false, errNoResponse
		}
		return 0, nil, false, fmt.Errorf("read status line: %w", err)
	}
	// HTTP/1.x SP 3DIGIT SP reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, false, fmt.Errorf("malformed status line %q", line)
	}
	http10 := line[7] == '0'
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, nil, false, fmt.Errorf("malformed status line %q", line)
		}
		code = code*10 + int(d-'0')
	}
	keep = !http10
	length := -1
	for {
		h, err := k.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, false, fmt.Errorf("read headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, nil, false, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n := 0
			if len(value) == 0 || len(value) > 9 {
				return 0, nil, false, fmt.Errorf("bad Content-Length %q", value)
			}
			for _, d := range value {
				if d < '0' || d > '9' {
					return 0, nil, false, fmt.Errorf("bad Content-Length %q", value)
				}
				n = n*10 + int(d-'0')
			}
			length = n
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, false, fmt.Errorf("Transfer-Encoding %q is not supported by this client", value)
		}
	}
	if code == 204 || code == 304 {
		return code, k.body[:0], keep, nil
	}
	if length < 0 {
		// No length: the body ends with the connection.
		b := bytes.NewBuffer(k.body[:0])
		if _, err := b.ReadFrom(k.br); err != nil {
			return 0, nil, false, fmt.Errorf("read body: %w", err)
		}
		k.body = b.Bytes()
		return code, k.body, false, nil
	}
	if cap(k.body) < length {
		k.body = make([]byte, length)
	}
	k.body = k.body[:length]
	if _, err := io.ReadFull(k.br, k.body); err != nil {
		return 0, nil, false, fmt.Errorf("read body (%d octets): %w", length, err)
	}
	return code, k.body, keep, nil
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// getRequest builds a GET request for rawURL (http:// only).
func getRequest(rawURL string) (addr string, req []byte, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return "", nil, fmt.Errorf("%s: want an http://host:port/ URL", rawURL)
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	// Keep-Alive is said explicitly for HTTP/1.0-minded servers (OpenSSL's
	// responder); HTTP/1.1 servers keep the connection anyway.
	req = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n", u.EscapedPath(), u.Host)
	return addr, req, nil
}

// escapeB64 makes standard base64 safe in one URL path segment
// (RFC 5019 §5: the request is base64 then URL encoded).
func escapeB64(s string) string {
	r := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D")
	return r.Replace(s)
}
