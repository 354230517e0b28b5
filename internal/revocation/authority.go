package revocation

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/trustgate/trustgate/internal/store"
)

// errNoCA is returned (wrapped) for a CA that does not exist or has no
// certificate yet: there is nothing to publish for it.
var errNoCA = errors.New("no such CA with a certificate")

// authority is the published state of one CA: its CRL scopes, its OCSP
// responder and its cache of signed answers.
type authority struct {
	id, name string
	cert     *x509.Certificate
	// hashes are the CA's issuerNameHash and issuerKeyHash under each
	// hash algorithm a CertID may use (RFC 6960 §4.1.1).
	hashes [numHashes]issuerHashes
	// scopes[0] is the full CRL; scopes[1+i] is partition i.
	scopes []*scope

	// gen changes on every Notify of the CA: an answer signed from a
	// status read before a change is not cached (see Service.fill).
	gen atomic.Uint64
	// cache holds signed answers by CertID variant (hash algorithm and
	// parameter encoding), then by serial.
	cache [numVariants]answerCache

	respMu     sync.Mutex // serializes issuing responder certificates
	resp       atomic.Pointer[responder]
	respFailed atomic.Pointer[failure] // the last failure to issue one
	rotateErr  string                  // the last rotation failure, logged once; under respMu
}

type issuerHashes struct{ name, key []byte }

// Hash algorithms a CertID may use: SHA-1 (RFC 5019 §2.1.1 makes it the
// one clients send) and the SHA-2 family.
const (
	hashSHA1 = iota
	hashSHA256
	hashSHA384
	hashSHA512
	numHashes
)

func sum(h int, b []byte) []byte {
	switch h {
	case hashSHA1:
		s := sha1.Sum(b)
		return s[:]
	case hashSHA256:
		s := sha256.Sum256(b)
		return s[:]
	case hashSHA384:
		s := sha512.Sum384(b)
		return s[:]
	default:
		s := sha512.Sum512(b)
		return s[:]
	}
}

// subjectPublicKey returns the contents of the subjectPublicKey BIT
// STRING of a certificate's SubjectPublicKeyInfo: what issuerKeyHash
// (RFC 6960 §4.1.1) and the responder's KeyHash (§4.2.1) hash.
func subjectPublicKey(c *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var key []byte
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.SkipASN1(cbasn1.SEQUENCE) ||
		!spki.ReadASN1BitStringAsBytes(&key) {
		return nil, errors.New("malformed subject public key info")
	}
	return key, nil
}

func newAuthority(c *store.CA, baseURL string) (*authority, error) {
	cert, err := x509.ParseCertificate(c.CertDER)
	if err != nil {
		return nil, fmt.Errorf("parse certificate of CA %q: %w", c.Name, err)
	}
	key, err := subjectPublicKey(cert)
	if err != nil {
		return nil, fmt.Errorf("certificate of CA %q: %w", c.Name, err)
	}
	a := &authority{id: c.ID, name: c.Name, cert: cert}
	for h := range numHashes {
		a.hashes[h] = issuerHashes{name: sum(h, cert.RawSubject), key: sum(h, key)}
	}
	for v := range a.cache {
		a.cache[v].init()
	}
	// The full CRL is a complete CRL: it carries no issuing distribution
	// point, so it covers every certificate of the CA whatever CRL
	// distribution point the certificate names, or none. With an IDP
	// naming a distribution point, openssl verify -crl_check_all (what
	// nginx's ssl_crl turns on) finds the CA's own certificate, which has
	// no CDP, out of the CRL's scope ("different CRL scope"), and so
	// would any certificate issued under another BaseURL.
	a.scopes = append(a.scopes, &scope{part: -1, numberKey: 0})
	if c.CRLPartitions > 1 {
		// The store numbers each partition's CRLs under the partition
		// index, and refuses negative indexes; the full CRL of a
		// partitioned CA takes the index after the last partition, which
		// no certificate has since the count is fixed at creation.
		a.scopes[0].numberKey = c.CRLPartitions
		// Partition CRLs are partial (RFC 5280 §5.2.5): each names its
		// URL, the one its certificates carry, in a critical IDP.
		if baseURL != "" {
			for i := range c.CRLPartitions {
				a.scopes = append(a.scopes, &scope{part: i, numberKey: i,
					url: baseURL + "/crl/" + c.Name + "/" + strconv.Itoa(i) + ".crl"})
			}
		}
	}
	return a, nil
}

// authorityFor returns the authority of a CA record with a certificate,
// creating it on first sight.
func (s *Service) authorityFor(c *store.CA) (*authority, error) {
	if a, ok := s.byID.Load(c.ID); ok {
		return a.(*authority), nil
	}
	if len(c.CertDER) == 0 {
		return nil, fmt.Errorf("CA %q: %w", c.Name, errNoCA)
	}
	s.addMu.Lock()
	defer s.addMu.Unlock()
	if a, ok := s.byID.Load(c.ID); ok {
		return a.(*authority), nil
	}
	a, err := newAuthority(c, s.cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	s.byID.Store(a.id, a)
	s.byName.Store(a.name, a)
	return a, nil
}

// authorityByID returns the authority of the CA with ID id, reading the
// store on first sight. A CA that does not exist or has no certificate
// is errNoCA.
func (s *Service) authorityByID(ctx context.Context, id string) (*authority, error) {
	if a, ok := s.byID.Load(id); ok {
		return a.(*authority), nil
	}
	c, err := s.cfg.Store.GetCAByID(ctx, id)
	if store.IsNotFound(err) {
		return nil, fmt.Errorf("CA %s: %w", id, errNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", id, err)
	}
	return s.authorityFor(c)
}

// authorityByRef returns the authority a URL names: by CA name, or else
// by CA ID.
func (s *Service) authorityByRef(ctx context.Context, ref string) (*authority, error) {
	if a, ok := s.byName.Load(ref); ok {
		return a.(*authority), nil
	}
	if a, ok := s.byID.Load(ref); ok {
		return a.(*authority), nil
	}
	c, err := s.cfg.Store.GetCA(ctx, ref)
	if store.IsNotFound(err) {
		c, err = s.cfg.Store.GetCAByID(ctx, ref)
	}
	if store.IsNotFound(err) {
		return nil, fmt.Errorf("CA %q: %w", ref, errNoCA)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA %q: %w", ref, err)
	}
	return s.authorityFor(c)
}
