package revocation

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of publication, the values of the propagation metric's kind label.
const (
	kindCRL = iota
	kindOCSP
)

// metrics are the service's Prometheus collectors.
type metrics struct {
	propagation [2]prometheus.Observer
	crlEntries  *prometheus.GaugeVec
	crlBuild    prometheus.Histogram
	// deltasSigned counts the delta CRLs signed.
	deltasSigned prometheus.Counter
	// responses counts OCSP responses by status: the response status
	// for an unsuccessful response, the certificate status of each
	// SingleResponse of a successful one. Resolved once: the hot path
	// does no label lookup.
	unsuccessful map[int]prometheus.Counter
	successful   [3]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, cacheEntries *atomic.Int64) (*metrics, error) {
	propagation := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "trustgate_revocation_propagation_seconds",
		Help: "Time from a certificate's status change to the new CRL or OCSP answer of its CA being served.",
		// Fine steps around the 100 ms coalescing window, where most changes land.
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.11, 0.125, 0.15, 0.175, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60},
	}, []string{"kind"})
	crlEntries := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "trustgate_crl_entries",
		Help: "Entries on the last published full CRL of each CA.",
	}, []string{"ca"})
	crlBuild := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "trustgate_crl_build_seconds",
		Help:    "Time to read, encode and sign one CRL.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1 ms .. 65 s
	})
	deltasSigned := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trustgate_crl_deltas_signed_total",
		Help: "Delta CRLs signed for gateways: one per CA, base CRL number and current CRL number, shared by every gateway at that base.",
	})
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trustgate_ocsp_responses_total",
		Help: "OCSP responses by status: good, revoked or unknown per certificate answered, or the error status.",
	}, []string{"status"})
	cache := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trustgate_ocsp_cache_entries",
		Help: "Signed OCSP answers held in the cache.",
	}, func() float64 { return float64(cacheEntries.Load()) })

	m := &metrics{
		propagation: [2]prometheus.Observer{
			kindCRL:  propagation.WithLabelValues("crl"),
			kindOCSP: propagation.WithLabelValues("ocsp"),
		},
		crlEntries:   crlEntries,
		crlBuild:     crlBuild,
		deltasSigned: deltasSigned,
		unsuccessful: map[int]prometheus.Counter{
			respMalformedRequest: responses.WithLabelValues("malformedRequest"),
			respInternalError:    responses.WithLabelValues("internalError"),
			respTryLater:         responses.WithLabelValues("tryLater"),
			respUnauthorized:     responses.WithLabelValues("unauthorized"),
		},
		successful: [3]prometheus.Counter{
			statusGood:    responses.WithLabelValues("good"),
			statusRevoked: responses.WithLabelValues("revoked"),
			statusUnknown: responses.WithLabelValues("unknown"),
		},
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{propagation, crlEntries, crlBuild, deltasSigned, responses, cache} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("revocation: register metrics: %w", err)
	}
	return m, nil
}

// count counts one OCSP response: respStatus, and for a successful one
// the certificate status certStatus.
func (m *metrics) count(respStatus, certStatus int) {
	if respStatus == respSuccessful {
		m.successful[certStatus].Inc()
		return
	}
	m.unsuccessful[respStatus].Inc()
}
