package revocation

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxRequestSize bounds an OCSP request, in DER octets.
const maxRequestSize = 10 << 10

// Handler serves the public, unauthenticated endpoints:
//
//	GET  /crl/{ca}.crl        the CA's full CRL, DER (application/pkix-crl)
//	GET  /crl/{ca}.pem        the same in PEM ("X509 CRL")
//	GET  /crl/{ca}/{n}.crl    partition n's CRL of a partitioned CA (and .pem)
//	GET  /ocsp/{ca}/{request} OCSP, the request in base64 (RFC 5019 §5)
//	POST /ocsp/{ca}           OCSP, the request as application/ocsp-request
//
// {ca} is a CA's name (or ID). The handler reads the request path as sent
// (URL.EscapedPath) and expects it whole, /crl/ or /ocsp/ included. Mount
// it where http.ServeMux does not clean paths first: ServeMux redirects a
// path holding "//", which base64 in a GET request may contain.
//
// A CRL answer carries ETag, Last-Modified (thisUpdate), Expires
// (nextUpdate) and Cache-Control, and honours If-None-Match. An OCSP
// answer is always HTTP 200 with an OCSPResponse, malformedRequest and
// unauthorized included, as OCSP clients expect; only a wrong method
// (405) or content type (415) is an HTTP error.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Service) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/crl/"):
		s.handleCRL(w, r, p[len("/crl/"):])
	case strings.HasPrefix(p, "/ocsp/"):
		s.handleOCSP(w, r, p[len("/ocsp/"):])
	default:
		http.NotFound(w, r)
	}
}

// handleCRL serves /crl/{ca}.crl, /crl/{ca}.pem, /crl/{ca}/{n}.crl and
// /crl/{ca}/{n}.pem; rest is the escaped path after /crl/.
func (s *Service) handleCRL(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ref, file, partitioned := strings.Cut(rest, "/")
	if !partitioned {
		file = ref
	}
	var ext string
	switch {
	case strings.HasSuffix(file, ".crl"):
		ext = ".crl"
	case strings.HasSuffix(file, ".pem"):
		ext = ".pem"
	default:
		http.NotFound(w, r)
		return
	}
	base := strings.TrimSuffix(file, ext)
	part := -1
	if partitioned {
		n, ok := parsePartition(base)
		if !ok {
			http.NotFound(w, r)
			return
		}
		part = n
	} else {
		ref = base
	}
	ref, err := url.PathUnescape(ref)
	if err != nil {
		http.Error(w, "malformed CA name in path", http.StatusBadRequest)
		return
	}
	if !validRef(ref) {
		http.NotFound(w, r)
		return
	}
	a, err := s.authorityByRef(r.Context(), ref)
	if errors.Is(err, errNoCA) {
		http.Error(w, "no CA "+strconv.Quote(ref)+" with a certificate", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Warn("revocation: CRL request failed", logCA, ref, logErr, err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	sc := a.scopes[0]
	if part >= 0 {
		if part >= len(a.scopes)-1 {
			http.Error(w, "CA "+strconv.Quote(ref)+" has no CRL partition "+strconv.Itoa(part), http.StatusNotFound)
			return
		}
		sc = a.scopes[part+1]
	}
	s.serveCRL(w, r, a, sc, ext == ".pem")
}

// parsePartition parses a partition number: decimal digits without sign
// or leading zeros.
func parsePartition(s string) (int, bool) {
	if s == "" || len(s) > 6 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// validRef reports whether s can be a CA name or ID: CA names are
// [a-z0-9][a-z0-9._-]{0,62}, IDs are letters, digits and dashes. Other
// strings are answered without reading the store.
func validRef(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Header values shared by every OCSP response; net/http only reads them.
var (
	hdrOCSPResponse = []string{"application/ocsp-response"}
	hdrNoStore      = []string{"no-store"}
)

// handleOCSP serves GET /ocsp/{ca}/{base64 request} and POST /ocsp/{ca};
// rest is the escaped path after /ocsp/.
func (s *Service) handleOCSP(w http.ResponseWriter, r *http.Request, rest string) {
	var ref string
	var der []byte
	ok := true
	switch r.Method {
	case http.MethodGet:
		var enc string
		ref, enc, _ = strings.Cut(rest, "/")
		der, ok = decodeGET(enc)
	case http.MethodPost:
		ref = strings.TrimSuffix(rest, "/")
		if strings.Contains(ref, "/") {
			http.NotFound(w, r)
			return
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/ocsp-request" {
			http.Error(w, "an OCSP request must be sent as application/ocsp-request", http.StatusUnsupportedMediaType)
			return
		}
		der, err = io.ReadAll(io.LimitReader(r.Body, maxRequestSize+1))
		ok = err == nil && len(der) <= maxRequestSize
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	now := s.now()
	var resp response
	if ref, err := url.PathUnescape(ref); !ok {
		s.met.count(respMalformedRequest, 0)
		resp = malformedResponse
	} else if err != nil || !validRef(ref) {
		s.met.count(respUnauthorized, 0)
		resp = unauthorizedResponse
	} else {
		resp = s.respond(r.Context(), ref, der, now)
	}

	h := w.Header()
	h["Content-Type"] = hdrOCSPResponse
	if ans := resp.ans; ans != nil && r.Method == http.MethodGet {
		// RFC 5019 §6.2: a GET answer may be cached until nextUpdate.
		h["Content-Length"] = ans.hdrLength
		h["Last-Modified"] = ans.hdrLastModified
		h["Expires"] = ans.hdrExpires
		h["ETag"] = ans.hdrETag
		h["Cache-Control"] = []string{"max-age=" + strconv.Itoa(maxAge(now, ans.nextUpdate, s.cfg.MaxAge)) + ", public, no-transform, must-revalidate"}
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, ans.hdrETag[0]) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else {
		// Nonce answers are for one request; error answers must not stick.
		h["Content-Length"] = []string{strconv.Itoa(len(resp.head) + len(resp.tail))}
		h["Cache-Control"] = hdrNoStore
	}
	w.WriteHeader(http.StatusOK)
	w.Write(resp.head)
	w.Write(resp.tail)
}

// decodeGET decodes the request part of a GET path: base64 (RFC 5019 §5,
// RFC 6960 Appendix A.1), URL-escaped or not. Padding may be missing and
// the URL-safe alphabet is accepted too.
func decodeGET(enc string) ([]byte, bool) {
	if enc == "" || len(enc) > 3*(maxRequestSize*4/3) {
		return nil, false
	}
	u, err := url.PathUnescape(enc)
	if err != nil {
		return nil, false
	}
	u = strings.TrimRight(u, "=")
	e := base64.RawStdEncoding
	if strings.ContainsAny(u, "-_") {
		e = base64.RawURLEncoding
	}
	der, err := e.DecodeString(u)
	if err != nil || len(der) > maxRequestSize {
		return nil, false
	}
	return der, true
}

// etagMatches reports whether an If-None-Match header matches etag (RFC
// 9110 §13.1.2: weak comparison, "*" matches anything).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
