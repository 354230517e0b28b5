package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/atomicfile"
)

// snapshotFormat names the layout of a snapshot file; a file of another
// format is refused, not guessed at. Format 2 may carry delta CRLs
// (Snapshot.DeltaCRLs, applied to its full CRLs): a gateway that knows
// only format 1 would not apply them, so it refuses the file rather than
// enforce its full CRLs alone. Format 1 files are read as they are.
const (
	snapshotFormat   = "trustgate-gateway-snapshot/2"
	snapshotFormatV1 = "trustgate-gateway-snapshot/1"
)

// snapshotFile is what a gateway keeps on disk of a named trust store: the
// last snapshot it enforced, the copies of the snapshot's CRL URLs it
// fetched, and when the control plane last confirmed the snapshot current.
// Written atomically (internal/atomicfile); Content is covered by SHA256,
// the hex SHA-256 of Content's bytes exactly as stored, so that a file
// damaged on disk is refused rather than enforced.
type snapshotFile struct {
	Format  string          `json:"format"`
	SHA256  string          `json:"sha256"`
	Content json.RawMessage `json:"content"`
}

// snapshotContent is the checksummed part of a snapshot file.
type snapshotContent struct {
	TrustStore string `json:"trust_store"`
	// ETag is the snapshot's, sent as If-None-Match after a restart: an
	// unchanged store then costs a 304.
	ETag string `json:"etag"`
	// Snapshot is what the gateway enforces: full CRLs in CRLs, and the
	// delta CRLs applied to them in DeltaCRLs.
	Snapshot *apiv1.TrustStoreSnapshot `json:"snapshot"`
	// CRLs holds the fetched copy of each of Snapshot.CRLURLs, by URL.
	CRLs map[string][]byte `json:"crls,omitempty"`
	// ConfirmedAt is when the control plane last answered this snapshot
	// or 304 for it.
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// writeSnapshotFile writes c to path atomically, readable by the owner
// only: the snapshot is no secret, but nothing else needs it.
func writeSnapshotFile(path string, c *snapshotContent) error {
	content, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("snapshot file %s: %w", path, err)
	}
	sum := sha256.Sum256(content)
	b, err := json.Marshal(snapshotFile{Format: snapshotFormat, SHA256: hex.EncodeToString(sum[:]), Content: content})
	if err != nil {
		return fmt.Errorf("snapshot file %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("snapshot file %s: %w", path, err)
	}
	return nil
}

// errNoSnapshotFile is returned (wrapped) when there is no snapshot file.
var errNoSnapshotFile = errors.New("no snapshot file")

// readSnapshotFile reads and checks the snapshot file of the trust store
// name at path: its format, checksum and trust-store name must hold.
func readSnapshotFile(path, name string) (*snapshotContent, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("snapshot file %s: %w", path, errNoSnapshotFile)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot file %s: %w", path, err)
	}
	var f snapshotFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("snapshot file %s: not a snapshot file: %w", path, err)
	}
	if f.Format != snapshotFormat && f.Format != snapshotFormatV1 {
		return nil, fmt.Errorf("snapshot file %s: format %q, want %q", path, f.Format, snapshotFormat)
	}
	sum := sha256.Sum256(f.Content)
	if hex.EncodeToString(sum[:]) != f.SHA256 {
		return nil, fmt.Errorf("snapshot file %s: checksum mismatch: the file is damaged", path)
	}
	var c snapshotContent
	if err := json.Unmarshal(f.Content, &c); err != nil {
		return nil, fmt.Errorf("snapshot file %s: %w", path, err)
	}
	if c.TrustStore != name || c.Snapshot == nil {
		return nil, fmt.Errorf("snapshot file %s: holds trust store %q, want %q", path, c.TrustStore, name)
	}
	if len(c.Snapshot.UnchangedCRLs) > 0 {
		return nil, fmt.Errorf("snapshot file %s: names CRLs it does not hold", path)
	}
	for _, u := range c.Snapshot.CRLURLs {
		if len(c.CRLs[u]) == 0 {
			return nil, fmt.Errorf("snapshot file %s: no copy of CRL %s", path, u)
		}
	}
	return &c, nil
}
