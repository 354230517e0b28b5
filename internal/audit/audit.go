// Package audit reads and checks the hash-chained audit log. Records are
// appended by the store, in the transaction of the change they record;
// this package walks them and says whether, and where, the chain breaks.
package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

// Lister is what verification needs from the store.
type Lister interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditRecord, error)
}

// Result is the outcome of Verify.
type Result struct {
	OK      bool
	Records int64
	// HeadHash is the last record's hash, hex.
	HeadHash string
	// Seq is the record where the chain first breaks, Problem says how.
	Seq     int64
	Problem string
}

// Verify walks the whole log in Seq order and checks that records are
// numbered 1, 2, 3… without gaps, that each holds the hash of the one
// before, and that each one's hash matches its content. It stops at the
// first break: a changed record shows as a hash mismatch at that record, a
// deleted one as a gap, and an inserted or reordered one as a record whose
// predecessor's hash is not the one it holds. Removing records from the
// end leaves a valid, shorter chain; compare HeadHash with a copy kept
// elsewhere to detect that.
func Verify(ctx context.Context, l Lister) (Result, error) {
	var (
		res      Result
		prevHash []byte
	)
	for {
		page, err := l.ListAudit(ctx, store.AuditFilter{After: res.Records, Limit: 5000})
		if err != nil {
			return Result{}, fmt.Errorf("verify audit log: %w", err)
		}
		if len(page) == 0 {
			res.OK = true
			return res, nil
		}
		for _, r := range page {
			want := res.Records + 1
			switch {
			case r.Seq != want:
				return broken(res, want, fmt.Sprintf("record %d is missing (the next record is %d): a record was deleted", want, r.Seq)), nil
			case !bytes.Equal(r.PrevHash, prevHash):
				return broken(res, r.Seq, fmt.Sprintf("record %d does not follow record %d (its previous-hash differs): a record was inserted, deleted or moved before it", r.Seq, r.Seq-1)), nil
			case !bytes.Equal(r.Hash, store.AuditHash(r)):
				return broken(res, r.Seq, fmt.Sprintf("record %d was changed: its content does not match its hash", r.Seq)), nil
			}
			res.Records = r.Seq
			prevHash = r.Hash
			res.HeadHash = hex.EncodeToString(r.Hash)
		}
	}
}

func broken(res Result, seq int64, problem string) Result {
	res.OK, res.Seq, res.Problem = false, seq, problem
	return res
}
