// Command backend is the upstream of bench/gateway/run.sh: plain HTTP/1.1
// on a loopback address, answering every request with 200 "ok". It copies
// the client identity the proxy forwarded (X-Amzn-Mtls-Clientcert-Subject,
// which run.sh makes nginx and HAProxy send too) into the X-Echo-Subject
// response header, which mtlsload -expect-subject checks, so that a run
// only counts requests that went through the proxy with a verified client.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19480", "listen address (loopback)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	body := []byte("ok\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		if s := r.Header.Get("X-Amzn-Mtls-Clientcert-Subject"); s != "" {
			hdr["X-Echo-Subject"] = []string{s}
		}
		hdr["Content-Type"] = []string{"text/plain"}
		hdr["Content-Length"] = []string{"3"}
		w.Write(body)
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	fmt.Fprintln(os.Stderr, "backend: listening on", ln.Addr())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}
