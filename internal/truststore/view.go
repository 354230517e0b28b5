package truststore

import (
	"context"
	"crypto/x509"
	"fmt"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/store"
)

// Member sources as the API shows them.
const (
	sourceCA       = "ca"
	sourceExternal = "external"
	sourceUpload   = "upload"
	sourceURL      = "url"
)

// caCache reads each CA once per request.
type caCache struct {
	s    *Service
	byID map[string]*store.CA
}

func (c *caCache) get(ctx context.Context, id string) (*store.CA, error) {
	if ca, ok := c.byID[id]; ok {
		return ca, nil
	}
	ca, err := c.s.cfg.Store.GetCAByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", id, err)
	}
	if c.byID == nil {
		c.byID = map[string]*store.CA{}
	}
	c.byID[id] = ca
	return ca, nil
}

// view renders a trust store for the API.
func (s *Service) view(ctx context.Context, ts *store.TrustStore) (*apiv1.TrustStore, error) {
	return s.viewWith(ctx, ts, &caCache{s: s})
}

func (s *Service) viewWith(ctx context.Context, ts *store.TrustStore, cas *caCache) (*apiv1.TrustStore, error) {
	v := &apiv1.TrustStore{
		ID: ts.ID, Name: ts.Name, Version: ts.Version, CreatedAt: ts.CreatedAt, UpdatedAt: ts.UpdatedAt,
		CAs: []apiv1.TrustStoreCA{}, CRLs: []apiv1.TrustStoreCRL{},
	}
	for _, m := range ts.CAs {
		c, err := cas.get(ctx, m.CAID)
		if err != nil {
			return nil, fmt.Errorf("trust store %q: %w", ts.Name, err)
		}
		v.CAs = append(v.CAs, apiv1.TrustStoreCA{
			Ref: c.Name, Source: sourceCA, State: string(c.State), Subject: c.Subject,
			Fingerprint: fingerprint(c.CertDER), NotAfter: c.NotAfter, AddedAt: m.AddedAt,
		})
	}
	subjects := map[string]string{}
	for _, m := range ts.Certs {
		cert, err := x509.ParseCertificate(m.DER)
		if err != nil {
			return nil, fmt.Errorf("trust store %q: external certificate %s: %w", ts.Name, m.Fingerprint, err)
		}
		subjects[m.Fingerprint] = cert.Subject.String()
		v.CAs = append(v.CAs, apiv1.TrustStoreCA{
			Ref: m.Fingerprint, Source: sourceExternal, Subject: cert.Subject.String(),
			Fingerprint: m.Fingerprint, NotAfter: cert.NotAfter.UTC(), AddedAt: m.AddedAt,
		})
	}
	for _, c := range ts.CRLs {
		x := apiv1.TrustStoreCRL{ID: c.ID, AddedAt: c.AddedAt}
		if c.URL != "" {
			x.Source, x.URL = sourceURL, c.URL
		} else {
			x.Source, x.Issuer, x.Number = sourceUpload, subjects[c.IssuerRef], c.Number
			if !c.ThisUpdate.IsZero() {
				tu := c.ThisUpdate
				x.ThisUpdate = &tu
			}
			if !c.NextUpdate.IsZero() {
				nu := c.NextUpdate
				x.NextUpdate = &nu
			}
		}
		v.CRLs = append(v.CRLs, x)
	}
	return v, nil
}
