package agent

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus series, labelled by certificate name.
type metrics struct {
	notAfter, lastRenewal, lastError, consecutive *prometheus.GaugeVec
	renewals, failures, hookFailures              *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	g := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"certificate"})
	}
	c := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"certificate"})
	}
	m := &metrics{
		notAfter:     g("trustgate_agent_certificate_not_after_seconds", "NotAfter of the certificate in the files, as a Unix time."),
		lastRenewal:  g("trustgate_agent_last_renewal_timestamp_seconds", "When the agent last obtained the certificate, as a Unix time."),
		lastError:    g("trustgate_agent_last_error_timestamp_seconds", "When the agent last failed to obtain or reload the certificate, as a Unix time."),
		consecutive:  g("trustgate_agent_consecutive_failures", "Failed attempts since the last success."),
		renewals:     c("trustgate_agent_renewals_total", "Certificates obtained (enrolments and renewals)."),
		failures:     c("trustgate_agent_renewal_failures_total", "Failed attempts to obtain a certificate."),
		hookFailures: c("trustgate_agent_reload_failures_total", "Failed reload commands or signals after a renewal."),
	}
	// Agents that share a registry (a gateway's, which keeps its own
	// client certificate and its listeners' certificates with two) share
	// the series too: the certificate label tells them apart.
	register := func(c prometheus.Collector) prometheus.Collector {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector
			}
			panic(err)
		}
		return c
	}
	m.notAfter = register(m.notAfter).(*prometheus.GaugeVec)
	m.lastRenewal = register(m.lastRenewal).(*prometheus.GaugeVec)
	m.lastError = register(m.lastError).(*prometheus.GaugeVec)
	m.consecutive = register(m.consecutive).(*prometheus.GaugeVec)
	m.renewals = register(m.renewals).(*prometheus.CounterVec)
	m.failures = register(m.failures).(*prometheus.CounterVec)
	m.hookFailures = register(m.hookFailures).(*prometheus.CounterVec)
	return m
}

// healthAnswer is the body of /healthz.
type healthAnswer struct {
	Status       string   `json:"status"`
	Certificates []Status `json:"certificates"`
}

// Handler serves GET /healthz (200 when every certificate in the files is
// valid now, 503 otherwise, with the state of each) and GET /metrics.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		now := a.cfg.Clock.Now()
		ans := healthAnswer{Status: "ok", Certificates: a.Status()}
		code := http.StatusOK
		for i := range ans.Certificates {
			s := &ans.Certificates[i]
			s.Valid = s.NotAfter != nil && now.Before(*s.NotAfter) && s.Valid
			if !s.Valid {
				ans.Status, code = "degraded", http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(ans)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.cfg.Registry, promhttp.HandlerOpts{}))
	return mux
}
