package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
)

// checkIssued accepts only a server certificate of the CA asked for, valid
// now, with a chain holding that CA and every name asked for.
func TestCheckIssued(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	root := pkitest.New(t, pkitest.WithNow(now))
	issuing := root.Child(t, "issuing")
	other := root.Child(t, "other")
	ask := config.GatewayIssue{CA: "issuing", Profile: "server", CommonName: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"}}
	answer := func(ca *pkitest.CA, o pkitest.LeafOptions) *apiv1.IssueResponse {
		leaf, _ := ca.Leaf(t, o)
		return &apiv1.IssueResponse{CertificatePEM: string(pkitest.CertPEM(leaf)), ChainPEM: string(pkitest.CertPEM(ca.Chain()...))}
	}
	good := pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"}, ServerAuth: true}
	tests := []struct {
		name string
		res  *apiv1.IssueResponse
		at   time.Time
		want string // "" means accepted
	}{
		{"ok/as-asked", answer(issuing, good), now, ""},
		{"ok/more-names", answer(issuing, pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test", "www.gw.test"},
			IP: []string{"127.0.0.1"}, ServerAuth: true}), now, ""},
		{"fail/other-ca", answer(other, good), now, "not a server certificate of CA issuing valid now"},
		{"fail/client-only", answer(issuing, pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"},
			ClientAuth: true}), now, "not a server certificate"},
		{"fail/expired", answer(issuing, good), now.Add(400 * 24 * time.Hour), "valid now"},
		{"fail/names", answer(issuing, pkitest.LeafOptions{CN: "web2.gw.test", DNS: []string{"web2.gw.test"}, ServerAuth: true}), now,
			"it lacks the names asked for: CN=web.gw.test, dns:web.gw.test, ip:127.0.0.1"},
		{"fail/chain-without-ca", func() *apiv1.IssueResponse {
			r := answer(issuing, good)
			r.ChainPEM = string(pkitest.CertPEM(root.Cert))
			return r
		}(), now, "the chain sent does not hold CA issuing's certificate"},
		{"fail/no-certificate", &apiv1.IssueResponse{CertificatePEM: "junk"}, now, "certificate: no PEM CERTIFICATE block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkIssued(tt.res, issuing.CertPEM(), ask, tt.at)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
