package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus series. Label values come from the
// configuration (listener, route) or from fixed lists (result, reason,
// code), never from clients, so cardinality is bounded.
type metrics struct {
	handshakes   *prometheus.CounterVec
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	staleAccepts *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	// controlPlanePolls counts the requests for trust-store snapshots.
	controlPlanePolls *prometheus.CounterVec
	// crlsApplied counts the CRLs from the control plane compiled in.
	crlsApplied *prometheus.CounterVec
	// renewalChecks counts the checks of certificate.follow_renewals.
	renewalChecks *prometheus.CounterVec
	// issuances counts the attempts to have certificate.issue issued.
	issuances *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_handshakes_total",
			Help: "TLS handshakes by listener, result (success, failure) and failure reason (the ClientCert* reasons; empty for success and for failures unrelated to the client certificate).",
		}, []string{"listener", "result", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_requests_total",
			Help: "HTTP requests by listener, route (none when no route matched) and status code.",
		}, []string{"listener", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "trustgate_gateway_request_duration_seconds",
			Help:    "Time from the end of the request headers to the end of the response, by listener and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"listener", "route"}),
		staleAccepts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_stale_crl_accepts_total",
			Help: "Client certificates accepted although their issuer's CRL was past its nextUpdate (stale_crl_policy fail-open).",
		}, []string{"listener"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_reloads_total",
			Help: "Reloads of a listener's certificate or trust store, by result (changed, error).",
		}, []string{"listener", "what", "result"}),
		controlPlanePolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_control_plane_polls_total",
			Help: "Requests for the snapshot of a listener's control-plane trust store, by result (changed, not_modified, error). While errors go on, the listener enforces its last snapshot.",
		}, []string{"listener", "result"}),
		crlsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_crls_applied_total",
			Help: "CRLs of a listener's control-plane trust store compiled in, by kind: full (a whole CRL, compiled anew) or delta (a delta CRL applied to the full CRL held).",
		}, []string{"listener", "kind"}),
		renewalChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_certificate_renewal_checks_total",
			Help: "Checks with the control plane for a renewal of a listener's server certificate (certificate.follow_renewals), by result (renewed, current, error). After an error the listener keeps serving its certificate.",
		}, []string{"listener", "result"}),
		issuances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trustgate_gateway_certificate_issuances_total",
			Help: "Attempts to have a listener's server certificate issued by the control plane for a key generated on the gateway (certificate.issue), at start and at each renewal, by result (issued, error). After an error the listener keeps serving its certificate, and the attempt is retried with backoff.",
		}, []string{"listener", "result"}),
	}
	for _, c := range []prometheus.Collector{m.handshakes, m.requests, m.duration, m.staleAccepts, m.reloads, m.controlPlanePolls, m.crlsApplied, m.renewalChecks, m.issuances, &stateCollector{g: g}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	crlAgeDesc = prometheus.NewDesc("trustgate_gateway_crl_age_seconds",
		"Seconds since the thisUpdate of the oldest CRL in use for an issuer (RFC 2253 subject), by listener.",
		[]string{"listener", "issuer"}, nil)
	crlNextUpdateDesc = prometheus.NewDesc("trustgate_gateway_crl_next_update_timestamp_seconds",
		"The earliest nextUpdate of the CRLs in use for an issuer, as a Unix time.",
		[]string{"listener", "issuer"}, nil)
	snapshotAgeDesc = prometheus.NewDesc("trustgate_gateway_trust_snapshot_age_seconds",
		"Seconds since the control plane last confirmed the trust-store snapshot a listener enforces; past control_plane.max_staleness the listener refuses every client certificate.",
		[]string{"listener"}, nil)
	certExpiryDesc = prometheus.NewDesc("trustgate_gateway_certificate_not_after_timestamp_seconds",
		"The notAfter of a listener's server certificate, as a Unix time.",
		[]string{"listener"}, nil)
)

// stateCollector reads the listeners' current certificates and trust
// stores at scrape time, so a replaced trust store leaves no stale series.
type stateCollector struct{ g *Gateway }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- crlAgeDesc
	ch <- crlNextUpdateDesc
	ch <- certExpiryDesc
	ch <- snapshotAgeDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.g.now()
	for _, l := range c.g.listeners {
		if na := l.cert.notAfter(); !na.IsZero() {
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(na.Unix()), l.name)
		}
		if l.trust == nil {
			continue
		}
		if a, ok := l.trust.src.(Aging); ok {
			age, _ := a.Age(now)
			ch <- prometheus.MustNewConstMetric(snapshotAgeDesc, prometheus.GaugeValue, age.Seconds(), l.name)
		}
		type agg struct{ oldest, next time.Time }
		byIssuer := map[string]*agg{}
		var order []string
		for _, info := range l.trust.current().CRLs() {
			name := formatDN(info.Issuer.RawSubject)
			a, ok := byIssuer[name]
			if !ok {
				a = &agg{oldest: info.ThisUpdate, next: info.NextUpdate}
				byIssuer[name] = a
				order = append(order, name)
			}
			if info.ThisUpdate.Before(a.oldest) {
				a.oldest = info.ThisUpdate
			}
			if !info.NextUpdate.IsZero() && (a.next.IsZero() || info.NextUpdate.Before(a.next)) {
				a.next = info.NextUpdate
			}
		}
		for _, name := range order {
			a := byIssuer[name]
			ch <- prometheus.MustNewConstMetric(crlAgeDesc, prometheus.GaugeValue, now.Sub(a.oldest).Seconds(), l.name, name)
			if !a.next.IsZero() {
				ch <- prometheus.MustNewConstMetric(crlNextUpdateDesc, prometheus.GaugeValue, float64(a.next.Unix()), l.name, name)
			}
		}
	}
}

// requestSeriesCache holds a listener's request series by route and
// status once resolved: WithLabelValues hashes its labels (and the status
// is formatted) on every call, a few percent of a keep-alive request.
type requestSeriesCache struct {
	mu sync.RWMutex
	m  map[routeStatus]requestSeries
}

type routeStatus struct {
	route  string
	status int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// get returns the series of a listener's requests to route answered with status.
func (c *requestSeriesCache) get(m *metrics, listener, route string, status int) requestSeries {
	k := routeStatus{route, status}
	c.mu.RLock()
	s, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return s
	}
	s = requestSeries{
		count:    m.requests.WithLabelValues(listener, route, strconv.Itoa(status)),
		duration: m.duration.WithLabelValues(listener, route),
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[routeStatus]requestSeries{}
	}
	c.m[k] = s
	c.mu.Unlock()
	return s
}
