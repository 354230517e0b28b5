package pki_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"slices"
	"testing"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestKeyTypes(t *testing.T) {
	want := []pki.KeyType{pki.ECP256, pki.ECP384, pki.RSA2048, pki.RSA3072, pki.RSA4096, pki.Ed25519}
	got := pki.KeyTypes()
	if !slices.Equal(got, want) {
		t.Fatalf("KeyTypes() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if pki.KeyTypes()[0] != pki.ECP256 {
		t.Fatal("KeyTypes returned shared storage")
	}
}

func TestParseKeyType(t *testing.T) {
	tests := map[string]struct {
		in   string
		want pki.KeyType
		err  string
	}{
		"ok/ec-p256":                     {in: "ec-p256", want: pki.ECP256},
		"ok/upper case":                  {in: "RSA-3072", want: pki.RSA3072},
		"ok/ed25519":                     {in: "ed25519", want: pki.Ed25519},
		"fail/empty":                     {in: "", err: `unknown key type "" (known: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519)`},
		"fail/rsa-1024":                  {in: "rsa-1024", err: `unknown key type "rsa-1024"`},
		"fail/ec-p521":                   {in: "ec-p521", err: `unknown key type "ec-p521"`},
		"fail/rsa-2560 is not generated": {in: "rsa-2560", err: "unknown key type"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := pki.ParseKeyType(tt.in)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if got != tt.want {
				t.Errorf("ParseKeyType(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestGenerateKey checks that every key type generates a key KeyTypeOf
// maps back to the same type. The keys come from the shared cache, which
// generates them with GenerateKey.
func TestGenerateKey(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		t.Run("ok/"+string(kt), func(t *testing.T) {
			if got := keyTypeOf(t, testKey(t, kt, 0).Public()); got != kt {
				t.Errorf("KeyTypeOf(GenerateKey(%s)) = %s", kt, got)
			}
		})
	}
	t.Run("fail/unknown", func(t *testing.T) {
		_, err := pki.GenerateKey("dsa-1024")
		wantErr(t, err, pki.ErrInvalid, `cannot generate a key of type "dsa-1024"`)
	})
}

// oddModulus returns an odd number of exactly bits bits: KeyTypeOf checks
// sizes and shapes, not primality, so tests need no slow key generation.
func oddModulus(bits int) *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return n.SetBit(n, 0, 1)
}

func TestKeyTypeOf(t *testing.T) {
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		pub  crypto.PublicKey
		want pki.KeyType
		err  string
	}{
		"ok/ec-p256":                 {pub: testKey(t, pki.ECP256, 0).Public(), want: pki.ECP256},
		"ok/ec-p384":                 {pub: testKey(t, pki.ECP384, 0).Public(), want: pki.ECP384},
		"ok/ed25519":                 {pub: testKey(t, pki.Ed25519, 0).Public(), want: pki.Ed25519},
		"ok/rsa-2048":                {pub: &rsa.PublicKey{N: oddModulus(2048), E: 65537}, want: pki.RSA2048},
		"ok/rsa-2560 is named":       {pub: &rsa.PublicKey{N: oddModulus(2560), E: 65537}, want: "rsa-2560"},
		"ok/rsa-8192":                {pub: &rsa.PublicKey{N: oddModulus(8192), E: 3}, want: "rsa-8192"},
		"fail/rsa-1024":              {pub: &rsa.PublicKey{N: oddModulus(1024), E: 65537}, err: "pki: RSA key of 1024 bits is too small (minimum 2048)"},
		"fail/rsa-2047":              {pub: &rsa.PublicKey{N: oddModulus(2047), E: 65537}, err: "RSA key of 2047 bits is too small"},
		"fail/rsa-8200":              {pub: &rsa.PublicKey{N: oddModulus(8200), E: 65537}, err: "pki: RSA key of 8200 bits is too large (maximum 8192)"},
		"fail/rsa exponent 1":        {pub: &rsa.PublicKey{N: oddModulus(2048), E: 1}, err: "RSA public exponent 1 is not an odd number of at least 3"},
		"fail/rsa exponent even":     {pub: &rsa.PublicKey{N: oddModulus(2048), E: 65536}, err: "RSA public exponent 65536"},
		"fail/rsa modulus even":      {pub: &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}, err: "RSA modulus is even"},
		"fail/rsa empty":             {pub: &rsa.PublicKey{}, err: "RSA public key is empty"},
		"fail/ec-p521":               {pub: &p521.PublicKey, err: "pki: ECDSA curve P-521 is not accepted (use P-256 or P-384)"},
		"fail/ec-p224":               {pub: &p224.PublicKey, err: "ECDSA curve P-224 is not accepted"},
		"fail/ec point not on curve": {pub: &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}, err: "ECDSA public key is not a valid P-256 point"},
		"fail/ec empty":              {pub: &ecdsa.PublicKey{}, err: "ECDSA public key is empty"},
		"fail/ed25519 short":         {pub: ed25519.PublicKey(make([]byte, 31)), err: "Ed25519 public key has 31 bytes (want 32)"},
		"fail/x25519":                {pub: x25519.PublicKey(), err: "public key type *ecdh.PublicKey is not accepted"},
		"fail/nil":                   {pub: nil, err: "public key is missing"},
		"fail/private key":           {pub: testKey(t, pki.ECP256, 0), err: "public key type *ecdsa.PrivateKey is not accepted"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := pki.KeyTypeOf(tt.pub)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if got != tt.want {
				t.Errorf("KeyTypeOf = %q, want %q", got, tt.want)
			}
		})
	}
}
