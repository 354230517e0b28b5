// Package keystore keeps CA private keys in custody. Software keys are sealed
// with AES-256-GCM under a 32-byte master key before they reach the store; the
// CA's ID is the associated data, so a sealed key copied onto another CA's
// record does not open. Plaintext key bytes exist only in memory.
package keystore

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/youmark/pkcs8"
)

// MasterKeySize is the length of the master key in bytes (AES-256).
const MasterKeySize = 32

// sealVersion prefixes every sealed blob so the format can evolve.
const sealVersion = 1

// ErrWrongMasterKey is returned when a sealed value does not open under the
// configured master key.
var ErrWrongMasterKey = errors.New("keystore: the master key does not open this data (wrong master key file?)")

// Sealer seals and unseals private keys. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// New returns a Sealer for a 32-byte master key.
func New(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("keystore: master key must be %d bytes, got %d", MasterKeySize, len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// CreateMasterKeyFile writes 32 random bytes to path with mode 0600. It
// refuses to overwrite an existing file: losing a master key loses every CA.
func CreateMasterKeyFile(path string) error {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create master key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write master key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync master key file: %w", err)
	}
	return f.Close()
}

// LoadMasterKeyFile reads a master key file. It refuses a file that other
// users can read, or one of the wrong length.
func LoadMasterKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("master key file %s does not exist (run `trustgate init` or set TRUSTGATE_MASTER_KEY_FILE)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %04o; it must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("master key file %s holds %d bytes, want %d", path, len(key), MasterKeySize)
	}
	return key, nil
}

func aad(id string) []byte { return []byte("trustgate/sealed-key/v1/" + id) }

// SealBytes encrypts plaintext bound to id.
func (s *Sealer) SealBytes(id string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("keystore: nonce: %w", err)
	}
	out := make([]byte, 1, 1+len(nonce)+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, aad(id)), nil
}

// OpenBytes decrypts a value sealed for id. A value that does not open is
// ErrWrongMasterKey: GCM cannot tell a wrong key from tampering, and both
// must stop the server.
func (s *Sealer) OpenBytes(id string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("keystore: sealed value for %q is malformed", id)
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad(id))
	if err != nil {
		return nil, ErrWrongMasterKey
	}
	return pt, nil
}

// Seal encrypts a private key for the CA with the given id.
func (s *Sealer) Seal(id string, key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keystore: marshal key: %w", err)
	}
	defer clear(der)
	return s.SealBytes(id, der)
}

// Unseal decrypts the private key of the CA with the given id.
func (s *Sealer) Unseal(id string, sealed []byte) (crypto.Signer, error) {
	der, err := s.OpenBytes(id, sealed)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keystore: parse unsealed key of %q: %w", id, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keystore: key of %q is not a signer", id)
	}
	return signer, nil
}

// checkID names the canary sealed at first start: opening it at every start
// tells a wrong master key apart before anything is written.
const checkID = "master-key-check"

var checkPlain = []byte("trustgate master key check v1")

// Canary returns a value to store at first start.
func (s *Sealer) Canary() ([]byte, error) { return s.SealBytes(checkID, checkPlain) }

// VerifyCanary reports whether the stored canary opens under this master key.
func (s *Sealer) VerifyCanary(sealed []byte) error {
	pt, err := s.OpenBytes(checkID, sealed)
	if err != nil {
		return ErrWrongMasterKey
	}
	if !bytes.Equal(pt, checkPlain) {
		return ErrWrongMasterKey
	}
	return nil
}

// ExportEncryptedPEM returns key as an encrypted PKCS#8 PEM block (PBES2,
// PBKDF2-HMAC-SHA256, AES-256-CBC), the format `openssl pkey -passin` reads.
func ExportEncryptedPEM(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) < 8 {
		return nil, fmt.Errorf("passphrase must be at least 8 bytes")
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, &pkcs8.Opts{
		Cipher: pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{
			SaltSize: 16, IterationCount: 600000, HMACHash: crypto.SHA256,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}
