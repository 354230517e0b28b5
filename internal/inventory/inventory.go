// Package inventory is the searchable record of every certificate Trustgate
// issued or was asked to track: building records, listing with cursor
// pagination, import of external certificates, and export as PEM or PKCS#12.
package inventory

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// Status values as the inventory reports them; "expired" is derived from
// NotAfter at the time of the question.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
	StatusExpired = "expired"
)

// NewRecord builds the inventory record of a certificate issued by the CA
// with ID caID (or, with caID "", of an external issuer).
func NewRecord(cert *x509.Certificate, caID, profile, requester string, now time.Time) *store.Certificate {
	fp := sha256.Sum256(cert.Raw)
	kt, _ := pki.KeyTypeOf(cert.PublicKey)
	issuerKey := caID
	if issuerKey == "" {
		ik := sha256.Sum256(cert.RawIssuer)
		issuerKey = "ext:" + hex.EncodeToString(ik[:])
	}
	return &store.Certificate{
		Serial:      pki.SerialHex(cert.SerialNumber),
		CAID:        caID,
		IssuerKey:   issuerKey,
		Subject:     cert.Subject.String(),
		SANs:        pki.SANsOf(cert).Strings(),
		Profile:     profile,
		KeyType:     string(kt),
		NotBefore:   cert.NotBefore.UTC(),
		NotAfter:    cert.NotAfter.UTC(),
		Fingerprint: hex.EncodeToString(fp[:]),
		Status:      store.CertActive,
		DER:         cert.Raw,
		Requester:   requester,
		CreatedAt:   now.UTC(),
	}
}

// Status returns a record's status at time now.
func Status(c *store.Certificate, now time.Time) string {
	if c.Status == store.CertRevoked {
		return StatusRevoked
	}
	if !now.Before(c.NotAfter) {
		return StatusExpired
	}
	return StatusActive
}

// CAs is what the inventory needs to know about CAs.
type CAs interface {
	GetCA(ctx context.Context, name string) (*store.CA, error)
	GetCAByID(ctx context.Context, id string) (*store.CA, error)
	ListCAs(ctx context.Context) ([]*store.CA, error)
}

// Config configures a Service.
type Config struct {
	Store store.Store
	Now   func() time.Time
}

// Service answers inventory questions. It is safe for concurrent use.
type Service struct {
	st  store.Store
	now func() time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{st: cfg.Store, now: cfg.Now}
}

// Query is a user's search of the inventory.
type Query struct {
	CA             string // CA name
	Status         string // active | revoked | expired
	ExpiringWithin time.Duration
	SANContains    string
	Cursor         string
	Limit          int
}

// MaxLimit is the largest page.
const MaxLimit = 1000

// List returns one page of certificates and the cursor of the next page ("" at the end).
func (s *Service) List(ctx context.Context, q Query) ([]*store.Certificate, string, error) {
	now := s.now().UTC()
	f := store.CertFilter{Now: now, SANContains: q.SANContains, Limit: q.Limit}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > MaxLimit {
		return nil, "", fault.New(fault.Invalid, "limit %d is over the maximum of %d", q.Limit, MaxLimit)
	}
	if len(q.SANContains) > 253 {
		return nil, "", fault.New(fault.Invalid, "san_contains is longer than 253 characters")
	}
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, "", fault.New(fault.Invalid, "cursor %q is not one this API returned", q.Cursor)
		}
		f.After = n
	}
	if q.CA != "" {
		c, err := s.st.GetCA(ctx, q.CA)
		if store.IsNotFound(err) {
			return nil, "", fault.New(fault.NotFound, "CA %q does not exist", q.CA)
		}
		if err != nil {
			return nil, "", fmt.Errorf("list certificates: %w", err)
		}
		f.CAID = c.ID
	}
	switch q.Status {
	case "":
	case StatusActive:
		f.Status, f.NotExpired = store.CertActive, true
	case StatusRevoked:
		f.Status = store.CertRevoked
	case StatusExpired:
		f.Status, f.Expired = store.CertActive, true
	default:
		return nil, "", fault.New(fault.Invalid, "status %q is not one of active, revoked, expired", q.Status)
	}
	if q.ExpiringWithin < 0 {
		return nil, "", fault.New(fault.Invalid, "expiring_within must be positive")
	}
	if q.ExpiringWithin > 0 {
		f.ExpiresBy = now.Add(q.ExpiringWithin)
		f.NotExpired = true
	}
	certs, err := s.st.ListCertificates(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("list certificates: %w", err)
	}
	next := ""
	if len(certs) == f.Limit {
		next = strconv.FormatInt(certs[len(certs)-1].Seq, 10)
	}
	return certs, next, nil
}

// Get returns the certificate with a serial given in any form ParseSerial accepts.
func (s *Service) Get(ctx context.Context, serial string) (*store.Certificate, error) {
	n, err := pki.ParseSerial(serial)
	if err != nil {
		return nil, fault.New(fault.Invalid, "%v", err)
	}
	c, err := s.st.GetCertificate(ctx, pki.SerialHex(n))
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "no certificate with serial %s", pki.SerialHex(n))
	}
	if err != nil {
		return nil, fmt.Errorf("get certificate: %w", err)
	}
	return c, nil
}

// Chain returns the DER chain above a recorded certificate: its issuing CA
// and that CA's parents. External certificates have none.
func (s *Service) Chain(ctx context.Context, c *store.Certificate) ([][]byte, error) {
	var out [][]byte
	id := c.CAID
	for i := 0; id != "" && i < 8; i++ {
		ca, err := s.st.GetCAByID(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("chain of %s: %w", c.Serial, err)
		}
		if len(ca.CertDER) == 0 {
			break
		}
		out = append(out, ca.CertDER)
		if ca.ParentID == "" && len(ca.ChainDER) > 0 {
			ext, err := x509.ParseCertificates(ca.ChainDER)
			if err == nil {
				for _, e := range ext {
					out = append(out, e.Raw)
				}
			}
		}
		id = ca.ParentID
	}
	return out, nil
}

// Import records an external certificate for tracking. A certificate signed
// by one of Trustgate's CAs is attributed to it.
func (s *Service) Import(ctx context.Context, pemData []byte, requester string) (*store.Certificate, error) {
	blk, rest := pem.Decode(bytes.TrimSpace(pemData))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fault.New(fault.Invalid, "expected one PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fault.New(fault.Invalid, "import one certificate at a time: found data after the first PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fault.New(fault.Invalid, "certificate does not parse: %v", err)
	}
	caID := ""
	cas, err := s.st.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("import certificate: %w", err)
	}
	for _, ca := range cas {
		if len(ca.CertDER) == 0 {
			continue
		}
		if cc, err := x509.ParseCertificate(ca.CertDER); err == nil && cert.CheckSignatureFrom(cc) == nil {
			caID = ca.ID
			break
		}
	}
	rec := NewRecord(cert, caID, "", requester, s.now())
	rec.Imported = true
	if err := s.st.InsertCertificate(ctx, rec); err != nil {
		if store.IsConflict(err) {
			return nil, fault.New(fault.Conflict, "certificate with serial %s from this issuer is already in the inventory", rec.Serial)
		}
		return nil, fmt.Errorf("import certificate: %w", err)
	}
	return rec, nil
}

// EncodePEM encodes DER certificates as consecutive PEM blocks.
func EncodePEM(ders ...[]byte) string {
	var b strings.Builder
	for _, d := range ders {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	return b.String()
}

// EncodeKeyPEM encodes a private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal key: %w", err)
	}
	defer clear(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// EncodePKCS12 returns key, certificate and chain as a PKCS#12 file
// protected by passphrase (AES-256-CBC with PBKDF2, the modern encoding).
func EncodePKCS12(key crypto.Signer, certDER []byte, chain [][]byte, passphrase string) ([]byte, error) {
	if len(passphrase) < 8 {
		return nil, fault.New(fault.Invalid, "the PKCS#12 passphrase must be at least 8 characters")
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	var cas []*x509.Certificate
	for _, d := range chain {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		cas = append(cas, c)
	}
	out, err := pkcs12.Modern.WithRand(rand.Reader).Encode(key, cert, cas, passphrase)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12: %w", err)
	}
	return out, nil
}
