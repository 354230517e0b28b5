// Package api serves Trustgate's HTTP API: the /v1 JSON handlers, the public
// CA-certificate and health endpoints, the one route table they are all
// declared in, and the OpenAPI 3 document generated from that table.
// Handlers are thin: they decode, call a service, and encode. Error kinds
// become HTTP statuses here and nowhere else.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/store"
)

// CAService is what the handlers need from the CA service.
type CAService interface {
	CreateCA(ctx context.Context, r ca.CreateRequest) (*store.CA, error)
	GetCA(ctx context.Context, name string) (*store.CA, error)
	ListCAs(ctx context.Context) ([]*store.CA, error)
	Chain(ctx context.Context, c *store.CA) ([][]byte, error)
	ImportCACert(ctx context.Context, name string, pemData []byte) (*store.CA, error)
	SetEnabled(ctx context.Context, name string, enabled bool) (*store.CA, error)
	ExportKey(ctx context.Context, name string, passphrase []byte) ([]byte, error)
	TakeOffline(ctx context.Context, name string) (*store.CA, error)
	Issue(ctx context.Context, r ca.IssueRequest) (*ca.Issued, error)
	Revoke(ctx context.Context, serial string, reason int, requester string) (*store.Certificate, error)
	Unhold(ctx context.Context, serial, requester string) (*store.Certificate, error)
	Rotate(ctx context.Context, r ca.RotateRequest) (*ca.Rotation, error)
	Generations(ctx context.Context, c *store.CA) (predecessor, successor string, err error)
}

// Inventory is what the handlers need from the inventory.
type Inventory interface {
	List(ctx context.Context, q inventory.Query) ([]*store.Certificate, string, error)
	Get(ctx context.Context, serial string) (*store.Certificate, error)
	Chain(ctx context.Context, c *store.Certificate) ([][]byte, error)
	Import(ctx context.Context, pemData []byte, requester string) (*store.Certificate, error)
	Successors(ctx context.Context, c *store.Certificate) (renewedBy, latest string, err error)
}

// TrustStores is what the handlers need from the trust-store service.
type TrustStores interface {
	Create(ctx context.Context, r apiv1.CreateTrustStoreRequest) (*apiv1.TrustStore, error)
	List(ctx context.Context) ([]apiv1.TrustStore, error)
	Get(ctx context.Context, name string) (*apiv1.TrustStore, error)
	AddCA(ctx context.Context, name string, r apiv1.AddTrustStoreCARequest) (*apiv1.TrustStore, error)
	RemoveCA(ctx context.Context, name, ref string) (*apiv1.TrustStore, error)
	AddCRL(ctx context.Context, name string, r apiv1.AddTrustStoreCRLRequest) (*apiv1.TrustStore, error)
	RemoveCRL(ctx context.Context, name, id string) (*apiv1.TrustStore, error)
	Bundle(ctx context.Context, name string) ([]byte, error)
	Snapshot(ctx context.Context, name string) (*apiv1.TrustStoreSnapshot, error)
	SnapshotSince(ctx context.Context, name string, held apiv1.HeldCRLs) (*apiv1.TrustStoreSnapshot, error)
}

// Authorizer answers authorization questions; a denial is an error of kind
// fault.Denied whose message names the missing action and nothing of the
// policies.
type Authorizer interface {
	Authorize(ctx context.Context, q authz.Query) error
	// AuthorizeAny refuses a principal that could take action on no
	// resource at all; routes that authorize in their handler ask it first.
	AuthorizeAny(ctx context.Context, principal, action string) error
}

// Access is what the handlers need from the access-control service.
type Access interface {
	Authorizer
	Decide(ctx context.Context, q authz.Query) (authz.Decision, error)
	PutPolicy(ctx context.Context, name string, doc []byte) (*store.PolicyRecord, *authz.Policy, error)
	CreatePrincipal(ctx context.Context, np authz.NewPrincipal) (*store.Principal, string, error)
	UpdatePrincipal(ctx context.Context, name string, fn func(p *store.Principal) error) (*store.Principal, error)
	CreateToken(ctx context.Context, principal string, ttl time.Duration) (id, secret string, err error)
}

// AuditLog is what the handlers need to record calls and read the log.
type AuditLog interface {
	AppendAudit(ctx context.Context, r *store.AuditRecord) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditRecord, error)
}

// AccessStore reads what the access routes show.
type AccessStore interface {
	GetPolicy(ctx context.Context, name string) (*store.PolicyRecord, error)
	ListPolicies(ctx context.Context) ([]*store.PolicyRecord, error)
	DeletePolicy(ctx context.Context, name string) error
	GetPrincipal(ctx context.Context, name string) (*store.Principal, error)
	ListPrincipals(ctx context.Context) ([]*store.Principal, error)
	ListTokens(ctx context.Context, principal string) ([]*store.Token, error)
	RevokeToken(ctx context.Context, id string) error
}

// Authenticator maps a bearer token, or the client certificate of the TLS
// connection, to a principal.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (string, error)
	AuthenticateCert(ctx context.Context, chain []*x509.Certificate) (string, error)
}

// Config configures the API handler.
type Config struct {
	CA        CAService
	Inventory Inventory
	// TrustStores serves /v1/truststores; nil answers those routes with 503.
	TrustStores TrustStores
	// Bootstrap serves /v1/tokens and /v1/enroll; nil answers them with 503.
	Bootstrap BootstrapTokens
	// Renewal serves /v1/renew; nil answers it with 503.
	Renewal Renewal
	Auth    Authenticator
	// Authz decides what an authenticated principal may do; nil lets every
	// authenticated principal do everything (tests of other concerns).
	Authz Authorizer
	// Access serves /v1/policies and /v1/principals; nil answers them with 503.
	Access      Access
	AccessStore AccessStore
	// Audit records every mutating call and every denied call; nil records nothing.
	Audit AuditLog
	// Store answers GetCAByID for rendering parents; it may be the same store the services use.
	CAByID func(ctx context.Context, id string) (*store.CA, error)
	// MaxBodyBytes caps request bodies; default 1 MiB. A route may allow
	// more (Route.MaxBodyBytes).
	MaxBodyBytes int64
	// Ready reports whether the server is ready for /healthz; nil means always.
	Ready      func() bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Draining, when closed, ends every long poll at once (with 304 or the
	// snapshot), so that a shutdown does not wait for them; nil never
	// closes.
	Draining <-chan struct{}
}

// Handler is the API's http.Handler.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// watch holds the long polls of trust-store snapshots.
	watch *snapshotWatch
	// anon limits the audit records of unauthenticated calls, and
	// anonSummaryEvery is how long after a call is left out the summary
	// that counts it is written (anonAuditSummaryEvery; tests shorten it).
	anon             anonAudit
	anonSummaryEvery time.Duration
	// anonSkipped counts unauthenticated calls not audited.
	anonSkipped prometheus.Counter
	// summary is the pending write of the summary record, if any.
	summaryMu sync.Mutex
	summary   *time.Timer
}

// New builds the handler and registers every route of Routes().
func New(cfg Config) *Handler {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), anonSummaryEvery: anonAuditSummaryEvery}
	h.watch = &snapshotWatch{every: snapshotCheckEvery, stop: cfg.Draining, etag: func(ctx context.Context, name string) (string, error) {
		snap, err := cfg.TrustStores.Snapshot(ctx, name)
		if err != nil {
			return "", err
		}
		return snap.ETag, nil
	}}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trustgate_api_requests_total", Help: "API requests by route and status code.",
	}, []string{"route", "code"})
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "trustgate_api_request_duration_seconds", Help: "API request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"route"})
	h.anonSkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trustgate_audit_unauthenticated_skipped_total",
		Help: "Unauthenticated API calls (401 without a proved credential) not recorded one by one in the audit log, by its rate limits; a later record counts them.",
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(h.requests, h.latency, h.anonSkipped)
	}
	for _, rt := range Routes() {
		h.mux.Handle(rt.Method+" "+rt.Path, h.wrap(rt))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, fault.New(fault.NotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return h
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// request carries one call through a handler.
type request struct {
	*http.Request
	w         http.ResponseWriter
	h         *Handler
	principal string
	maxBody   int64 // the body limit of the route
	route     *Route
	// authorized is set once the request passed an authorization check.
	authorized bool
	// audit is the record of this call; the store appends it with the
	// call's first change, or wrap appends it alone at the end.
	audit *store.PendingAudit
}

// authorize asks whether the caller may take the route's action on
// resource; iss carries the facts of an issuance. Handlers of routes with
// no Resource call it once they know what the request is about.
func (r *request) authorize(resource string, iss *authz.Issuance) error {
	r.audit.Record.Resource = resource
	if r.route.Public {
		return nil // the handler has proved who called in its own way
	}
	if r.h.cfg.Authz != nil {
		q := authz.Query{Principal: r.principal, Action: r.route.Action, Resource: resource, Issuance: iss}
		if err := r.h.cfg.Authz.Authorize(r.Context(), q); err != nil {
			return err
		}
	}
	r.authorized = true
	return nil
}

// routeResource fills a route's Resource pattern from the request's path values.
func routeResource(pattern string, r *http.Request) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(pattern, '{')
		j := strings.IndexByte(pattern, '}')
		if i < 0 || j < i {
			b.WriteString(pattern)
			return b.String()
		}
		b.WriteString(pattern[:i])
		b.WriteString(r.PathValue(pattern[i+1 : j]))
		pattern = pattern[j+1:]
	}
}

// decode reads a JSON body into v: size-capped, unknown fields refused, one value only.
func (r *request) decode(v any) error {
	body := http.MaxBytesReader(r.w, r.Body, r.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err)
		}
		return fault.New(fault.Invalid, "request body holds more than one JSON value")
	}
	return nil
}

// decodeOptional is decode for routes whose body may be omitted entirely.
func (r *request) decodeOptional(v any) error {
	if err := r.decode(v); !errors.Is(err, errEmptyBody) {
		return err
	}
	return nil
}

var errEmptyBody = errors.New("a JSON object is required")

func decodeError(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var be base64.CorruptInputError
	switch {
	case errors.As(err, &mbe):
		return fault.New(fault.TooLarge, "request body is over the limit of %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return &fault.Error{Kind: fault.Invalid, Msg: "request body is empty", Err: errEmptyBody}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Invalid, "request body is truncated JSON")
	case errors.As(err, &se):
		return fault.New(fault.Invalid, "request body is not valid JSON (at byte %d): %v", se.Offset, se)
	case errors.As(err, &te):
		return fault.New(fault.Invalid, "field %q must be %s, not %s", te.Field, te.Type, te.Value)
	case errors.As(err, &be):
		return fault.New(fault.Invalid, "a field of the request body that holds bytes is not valid base64 (at its byte %d)", int64(be))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fault.New(fault.Invalid, "unknown field %s in request body", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return fault.New(fault.Invalid, "request body: %v", err)
	}
}

// result is what a handler returns: a status and a JSON value, or raw bytes.
type result struct {
	status      int
	body        any
	raw         []byte
	contentType string
}

func ok(v any) (*result, error)      { return &result{status: http.StatusOK, body: v}, nil }
func created(v any) (*result, error) { return &result{status: http.StatusCreated, body: v}, nil }

func (h *Handler) wrap(rt Route) http.Handler {
	label := rt.Method + " " + rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		defer func() {
			if p := recover(); p != nil {
				h.writeError(sw, r, fmt.Errorf("panic: %v", p))
			}
			h.requests.WithLabelValues(label, strconv.Itoa(sw.status)).Inc()
			h.latency.WithLabelValues(label).Observe(time.Since(start).Seconds())
		}()
		req := &request{Request: r, w: sw, h: h, maxBody: max(h.cfg.MaxBodyBytes, rt.MaxBodyBytes), route: &rt}
		var err error
		if !rt.Public || rt.Audit != "" {
			req.audit = h.newAudit(r, rt)
			sw.Header().Set("X-Request-Id", req.audit.Record.RequestID)
			// The audit record travels to the store with the call; the
			// caller's policies are read once for the whole call.
			req.Request = r.WithContext(authz.WithRequestMemo(store.WithAudit(r.Context(), req.audit)))
			defer func() { h.finishAudit(req, err) }()
		}
		if !rt.Public {
			if req.principal, err = h.authenticate(req.Request); err != nil {
				h.writeError(sw, r, err)
				return
			}
			req.audit.Record.Actor = req.principal
			if rt.Resource != "" {
				err = req.authorize(routeResource(rt.Resource, r), nil)
			} else if h.cfg.Authz != nil {
				err = h.cfg.Authz.AuthorizeAny(req.Context(), req.principal, rt.Action)
			}
			if err != nil {
				h.writeError(sw, r, err)
				return
			}
		}
		res, err := rt.handle(req)
		if err != nil {
			h.writeError(sw, r, err)
			return
		}
		if !rt.Public && !req.authorized {
			// A handler that authorizes by itself returned without doing
			// so: answer nothing rather than something unchecked.
			err = fmt.Errorf("route %s answered without an authorization check", label)
			h.writeError(sw, r, err)
			return
		}
		if res.raw != nil {
			if res.contentType != "" {
				sw.Header().Set("Content-Type", res.contentType)
			}
			sw.WriteHeader(res.status)
			sw.Write(res.raw)
			return
		}
		writeJSON(sw, res.status, res.body)
	})
}

func (h *Handler) authenticate(r *http.Request) (string, error) {
	authz := r.Header.Get("Authorization")
	if authz == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return h.cfg.Auth.AuthenticateCert(r.Context(), r.TLS.PeerCertificates)
	}
	if authz == "" {
		return "", fault.New(fault.Unauthenticated, "this route needs an API token (Authorization: Bearer <token>) or an operator client certificate")
	}
	tok, found := strings.CutPrefix(authz, "Bearer ")
	if !found {
		return "", fault.New(fault.Unauthenticated, "the Authorization header must be \"Bearer <token>\"")
	}
	return h.cfg.Auth.Authenticate(r.Context(), strings.TrimSpace(tok))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// StatusOf maps an error kind to its HTTP status.
func StatusOf(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.Denied:
		return http.StatusForbidden
	case fault.Unauthenticated:
		return http.StatusUnauthorized
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.TooManyRequests:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// writeError renders an error. A caller's fault shows its message; a
// server's fault shows only an ID that is also logged with the cause.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	k := fault.KindOf(err)
	status := StatusOf(k)
	body := apiv1.ErrorBody{Error: apiv1.Error{Code: k.String()}}
	if status >= 500 {
		idb := make([]byte, 8)
		rand.Read(idb)
		body.Error.ID = hex.EncodeToString(idb)
		body.Error.Message = "internal error; quote id " + body.Error.ID + " to the operator"
		if k == fault.Unavailable {
			// What is down (the store, the server still starting) is the
			// kind's own message, never its cause: an operator reading a
			// client's error learns where to look without the client
			// learning addresses or driver errors.
			what := ""
			if fe, ok := errors.AsType[*fault.Error](err); ok && fe.Msg != "" {
				what = " (" + fe.Msg + ")"
			}
			body.Error.Message = "the service is temporarily unavailable" + what + "; retry later (id " + body.Error.ID + ")"
			w.Header().Set("Retry-After", "1")
		}
		h.cfg.Logger.Error("request failed", "error_id", body.Error.ID, "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		var fe *fault.Error
		if errors.As(err, &fe) {
			body.Error.Message = fe.Error()
		} else {
			body.Error.Message = err.Error()
		}
		if k == fault.Unauthenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="trustgate"`)
		}
		if d := fault.RetryAfterOf(err); d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
		}
	}
	writeJSON(w, status, body)
}

// setActor names the caller of a public route once its handler has proved
// who it is ("bootstrap-token:ID", "certificate:SERIAL").
func (r *request) setActor(actor, resource string) {
	if r.audit != nil {
		r.audit.Record.Actor, r.audit.Record.Resource = actor, resource
	}
}

// newRequestID returns a random request id.
func newRequestID() string {
	idb := make([]byte, 8)
	rand.Read(idb)
	return hex.EncodeToString(idb)
}

// newAudit starts the audit record of a call to a guarded route.
func (h *Handler) newAudit(r *http.Request, rt Route) *store.PendingAudit {
	id := newRequestID()
	source := r.RemoteAddr
	if host, _, err := net.SplitHostPort(source); err == nil {
		source = host
	}
	action := rt.Action
	if rt.Public {
		action = rt.Audit
	}
	return &store.PendingAudit{Record: store.AuditRecord{
		At: h.cfg.Now().UTC(), Action: action, Resource: routeResource(rt.Resource, r),
		Decision: "allow", Outcome: "ok", RequestID: id, Source: source,
	}}
}

// finishAudit records a call that the store has not recorded with a
// change: every denied call (401, 403), and every mutating call that
// changed nothing or failed. Reads that were allowed are not recorded.
func (h *Handler) finishAudit(r *request, err error) {
	if h.cfg.Audit == nil || r.audit.Written() {
		return
	}
	rec := &r.audit.Record
	kind := fault.KindOf(err)
	denied := err != nil && (kind == fault.Denied || kind == fault.Unauthenticated)
	if r.Method == http.MethodGet && !denied {
		return
	}
	if err != nil {
		rec.Outcome = kind.String()
		if denied {
			rec.Decision = "deny"
		}
		var de *authz.DeniedError
		switch {
		case errors.As(err, &de):
			// The audit log is read by auditors, not by the caller: it
			// may say which statement decided.
			rec.Detail = de.Decision.Reason
		case StatusOf(kind) < 500:
			rec.Detail = err.Error()
		default:
			rec.Detail = "internal error"
		}
	}
	if kind == fault.Unauthenticated && rec.Actor == "" {
		// A refused call is recorded at a bounded rate: per source when
		// it proved no credential, per credential when it proved one that
		// was refused (revoked, expired), which the record then names.
		key := anonSourceKey(rec.Source)
		if c := fault.CredentialOf(err); c != nil {
			rec.Actor, key = c.Actor, c.Actor
			if c.About != "" {
				rec.Detail += "; " + c.About
			}
		}
		if !h.admitRefused(rec, key) {
			return
		}
	}
	// The call's own context may be ending; the record must still land.
	_ = h.appendAudit(context.WithoutCancel(r.Context()), rec)
}

// appendAudit writes rec, logging it as lost when the store refuses.
func (h *Handler) appendAudit(ctx context.Context, rec *store.AuditRecord) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := h.cfg.Audit.AppendAudit(ctx, rec)
	if err != nil {
		// The detail may count calls left out before this one: the log
		// keeps them.
		h.cfg.Logger.Error("audit record lost", "request_id", rec.RequestID, "action", rec.Action,
			"actor", rec.Actor, "detail", rec.Detail, "err", err)
	}
	return err
}

// admitRefused applies the limits of refused calls to rec, a 401, under
// key (the call's source, or the credential it proved): it reports whether
// rec is to be written, and counts it out otherwise. The decision is taken
// now, not at rec.At (the call's start, which a slow caller can put long
// before).
func (h *Handler) admitRefused(rec *store.AuditRecord, key string) bool {
	d := h.anon.admit(key, h.cfg.Now())
	if d.arm {
		h.summaryMu.Lock()
		h.summary = time.AfterFunc(h.anonSummaryEvery, h.writeAnonSummary)
		h.summaryMu.Unlock()
	}
	if d.record {
		if d.skipped > 0 {
			rec.Detail += skippedNote(d.skipped, d.source)
		}
		return true
	}
	h.anonSkipped.Inc()
	if d.warnSource {
		h.cfg.Logger.Warn("refused calls from this source, or with this credential, are audited at a limited rate from now on",
			"key", d.source, "burst", anonAuditBurst, "every", anonAuditEvery.String())
	}
	if d.warnAll {
		h.cfg.Logger.Warn("refused calls from all sources together are audited at a limited rate from now on",
			"burst", anonAuditAllBurst, "every", anonAuditAllEvery.String())
	}
	return false
}

// Close writes at once the summary record of refused calls left out that
// no record has counted yet, if one is pending, so that a stop loses no
// count. Call it once the servers have stopped, before the store closes.
func (h *Handler) Close() {
	h.summaryMu.Lock()
	t := h.summary
	h.summary = nil
	h.summaryMu.Unlock()
	if t != nil && t.Stop() {
		h.writeAnonSummary()
	}
}

// writeAnonSummary writes the record that counts the unauthenticated calls
// left out that no record has counted yet, so that a source that stops, or
// that was forgotten, still has its count in the chain.
func (h *Handler) writeAnonSummary() {
	now := h.cfg.Now()
	sum := h.anon.summary(now)
	if sum.total == 0 {
		return
	}
	rec := &store.AuditRecord{
		At: now.UTC(), Action: anonSummaryAction, Decision: "deny", Outcome: fault.Unauthenticated.String(),
		RequestID: newRequestID(), Detail: sum.detail(),
	}
	if h.appendAudit(context.Background(), rec) != nil {
		// The counts are in no record now: the log keeps them.
		h.cfg.Logger.Error("unauthenticated calls left out of the audit log and not counted there", "calls", sum.total, "detail", rec.Detail)
	}
}
