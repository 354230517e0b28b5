package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/store"
)

// The states of an insertReq. Only the transitions queued→taken (by a
// writer goroutine) and queued→abandoned (by a caller whose ctx is done) exist.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// insertReq is one InsertCertificate call waiting in the group-commit queue.
type insertReq struct {
	op    string // names the call in error messages
	caID  string
	args  []any              // bound to insertCertSQL
	audit *store.AuditRecord // appended with the row, when set
	state atomic.Int32
	done  chan insertResult // buffered; receives exactly one result once taken
}

// insertResult is the outcome of one insertReq.
type insertResult struct {
	seq int64
	err error
}

// seqLockClass is the first key of the advisory lock that each batch of
// inserts holds from before its rows take their seq until they are committed
// ("tgsq"); the second is derived from the schema, as for the migration lock.
const seqLockClass int32 = 0x74677371

// InsertCertificate records c and sets c.Seq. A duplicate (IssuerKey, Serial)
// is an error wrapping store.ErrConflict; a CAID that names no CA, one
// wrapping store.ErrNotFound; a negative Partition, a SAN holding a newline
// or NUL, or a time outside the years 0000-9999 is a fault.Invalid error. The
// store does not check Partition against the CA's CRLPartitions: the issuer
// assigns it.
//
// Concurrent calls are committed together: Config.Writers goroutines each
// take what is queued, up to Config.MaxBatch rows, and send it to the server
// as one pipelined transaction, so that a batch costs one round trip and one
// WAL flush. Each row is inserted with ON CONFLICT DO NOTHING, so a duplicate
// fails only its own caller; a row the server refuses otherwise (an unknown
// CA) is taken out and the rest of the batch sent again.
//
// A nil return means the row is durable. Once a writer has taken the row into
// a batch the call waits for that batch's commit even if ctx is done, so an
// error from ctx means the row was never written; until then a done ctx ends
// the wait in the queue at once.
//
// Every batch, on every node, holds a transaction-scoped advisory lock from
// before its rows take their Seq until they are committed, so rows become
// visible in Seq order: a walk of ListCertificates by Seq never passes over a
// row that commits later, as with SQLite's single writer. The cost is that
// batches of all nodes commit one after another; each is one WAL flush
// however many rows it holds.
func (d *DB) InsertCertificate(ctx context.Context, c *store.Certificate) error {
	op := fmt.Sprintf("insert certificate (issuer %q, serial %q)", c.IssuerKey, c.Serial)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	args, err := certArgs(c)
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	pending := store.AuditFrom(ctx)
	req := &insertReq{op: op, caID: c.CAID, args: args, done: make(chan insertResult, 1),
		audit: pending.Claim(fmt.Sprintf("record certificate serial %s of issuer %s", c.Serial, c.IssuerKey))}
	var res insertResult
	res.err = errClosed // anything but nil until the commit says otherwise
	defer func() { pending.Settle(res.err == nil && req.audit != nil) }()

	// Close takes sendMu for writing before it stops the writers, so a
	// request sent under the read lock is always drained.
	d.sendMu.RLock()
	if d.closed.Load() {
		d.sendMu.RUnlock()
		return fmt.Errorf("postgres: %s: %w", op, errClosed)
	}
	select {
	case d.queue <- req:
		d.sendMu.RUnlock()
	case <-ctx.Done():
		d.sendMu.RUnlock()
		return fmt.Errorf("postgres: %s: %w", op, ctx.Err())
	}

	select {
	case res = <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("postgres: %s: %w", op, ctx.Err())
		}
		// The row is in a batch: report what its commit did.
		res = <-req.done
	}
	if res.err != nil {
		return res.err
	}
	c.Seq = res.seq
	return nil
}

// writer is one of the goroutines that commit InsertCertificate calls. Each
// round it takes what is queued, up to MaxBatch, and commits it; while it
// commits, the next batch gathers in the queue. No timer delays a commit:
// batches grow exactly as much as the callers outpace the server.
func (d *DB) writer() {
	batch := make([]*insertReq, 0, d.cfg.MaxBatch)
	for {
		select {
		case r := <-d.queue:
			batch = takeReq(batch, r)
		case <-d.quit:
			// Close has stopped new sends: commit what is left, then stop.
			for {
				select {
				case r := <-d.queue:
					if batch = takeReq(batch, r); len(batch) == cap(batch) {
						d.commitBatch(batch)
						batch = clearBatch(batch)
					}
				default:
					d.commitBatch(batch)
					return
				}
			}
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case r := <-d.queue:
				batch = takeReq(batch, r)
			default:
				break fill
			}
		}
		d.commitBatch(batch)
		batch = clearBatch(batch)
	}
}

// takeReq appends r to batch unless its caller has abandoned it.
func takeReq(batch []*insertReq, r *insertReq) []*insertReq {
	if r.state.CompareAndSwap(reqQueued, reqTaken) {
		batch = append(batch, r)
	}
	return batch
}

// clearBatch empties batch, dropping its references for the collector.
func clearBatch(batch []*insertReq) []*insertReq {
	clear(batch)
	return batch[:0]
}

// commitBatch commits batch and sends every request its result once the
// commit is durable. A row the server refuses is taken out with its error
// and the others are sent again, until a transaction commits or fails as a
// whole; a failure of the whole fails the rows still in it.
func (d *DB) commitBatch(batch []*insertReq) {
	if len(batch) == 0 {
		return
	}
	// The transaction belongs to no caller: no caller's ctx may roll back
	// rows that other callers are waiting for.
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.WriteTimeout)
	defer cancel()
	results := make(map[*insertReq]insertResult, len(batch))
	pending := slices.Clone(batch)
	retried := false
	for len(pending) > 0 {
		bad, err := d.insertBatch(ctx, pending, results)
		if err == nil {
			break
		}
		if _, ok := errors.AsType[notRunError](err); ok && !retried {
			// Typically a connection that the server closed while it sat
			// in the pool (a restart): try once more on another.
			retried = true
			continue
		}
		if bad < 0 {
			for _, r := range pending {
				results[r] = insertResult{err: d.fail(ctx, r.op, err)}
			}
			break
		}
		results[pending[bad]] = insertResult{err: rowErr(ctx, pending[bad], err)}
		pending = slices.Delete(pending, bad, bad+1)
	}
	for _, r := range batch {
		r.done <- results[r]
	}
}

// insertBatch inserts batch in one transaction and, when it commits, records
// each row's result. It returns the index of the row that made the
// transaction fail, or -1 when the failure is not one row's (the lock, the
// connection, the commit), with the error; nothing is then committed.
//
// The batch is one pipeline ending in one Sync: the statements before a Sync
// form an implicit transaction that the server commits at the Sync, or rolls
// back whole at the first error (PostgreSQL protocol, "Extended Query" and
// "Pipelining"). So the batch costs one round trip, and the lock is held
// only while the server works, never across the network.
func (d *DB) insertBatch(ctx context.Context, batch []*insertReq, results map[*insertReq]insertResult) (bad int, err error) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return -1, err
	}
	defer conn.Release()
	if slices.ContainsFunc(batch, func(r *insertReq) bool { return r.audit != nil }) {
		return d.insertAuditedBatch(ctx, conn, batch, results)
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(batch)+1)}
	b.Queue("SELECT pg_advisory_xact_lock($1, $2)", seqLockClass, d.seqLockKey)
	for _, r := range batch {
		b.Queue(insertCertSQL, r.args...)
	}
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		if _, ok := errors.AsType[*pgconn.PgError](err); ok {
			// The server answered that the first statement failed, so
			// it ran none of the rest: a pipeline runs in order.
			return -1, notRunError{fmt.Errorf("lock: %w", err)}
		}
		return -1, fmt.Errorf("lock: %w", err)
	}
	seqs, bad, err := readSeqs(br, len(batch))
	if err != nil {
		return bad, err
	}
	if err := br.Close(); err != nil {
		return -1, fmt.Errorf("commit: %w", err)
	}
	recordResults(batch, seqs, results)
	return -1, nil
}

// insertAuditedBatch is insertBatch for a batch in which some rows carry
// an audit record. The records chain after the audit head, which is known
// only inside the transaction, so the batch is an explicit transaction of
// two pipelines: the lock, the rows and the head; then the records and the
// new head. The failure rules are insertBatch's.
func (d *DB) insertAuditedBatch(ctx context.Context, conn *pgxpool.Conn, batch []*insertReq, results map[*insertReq]insertResult) (bad int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return -1, notRunError{fmt.Errorf("begin: %w", err)}
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(ctx)
		}
	}()
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(batch)+2)}
	b.Queue("SELECT pg_advisory_xact_lock($1, $2)", seqLockClass, d.seqLockKey)
	for _, r := range batch {
		b.Queue(insertCertSQL, r.args...)
	}
	b.Queue("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
	n := len(batch)
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return -1, fmt.Errorf("lock: %w", err)
	}
	seqs, bad, err := readSeqs(br, n)
	if err != nil {
		br.Close()
		return bad, err
	}
	var headSeq int64
	var headHash []byte
	if err := br.QueryRow().Scan(&headSeq, &headHash); err != nil {
		br.Close()
		return -1, fmt.Errorf("lock audit head: %w", err)
	}
	if err := br.Close(); err != nil {
		return -1, err
	}
	b = &pgx.Batch{}
	for i, r := range batch {
		if seqs[i] == 0 || r.audit == nil {
			continue
		}
		rec := r.audit
		rec.Chain(headSeq, headHash)
		headSeq, headHash = rec.Seq, rec.Hash
		b.Queue(`INSERT INTO audit (seq, at, actor, action, resource, decision, outcome, request_id, source, detail, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			rec.Seq, rec.At, rec.Actor, rec.Action, rec.Resource, rec.Decision, rec.Outcome, rec.RequestID, rec.Source, rec.Detail,
			rec.PrevHash, rec.Hash)
	}
	b.Queue("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", headSeq, headHash)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return -1, fmt.Errorf("append audit records: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return -1, fmt.Errorf("commit: %w", err)
	}
	recordResults(batch, seqs, results)
	return -1, nil
}

// recordResults gives each row of a committed batch its seq, or its
// duplicate error.
func recordResults(batch []*insertReq, seqs []int64, results map[*insertReq]insertResult) {
	for i, r := range batch {
		if seqs[i] == 0 {
			results[r] = insertResult{err: fmt.Errorf("postgres: %s: duplicate issuer and serial: %w", r.op, store.ErrConflict)}
		} else {
			results[r] = insertResult{seq: seqs[i]}
		}
	}
}

// readSeqs reads the seq that each of n inserts returned (0 for a
// duplicate, which inserted nothing). On error it says which row failed
// (bad >= 0) when the server refused that row's values, else -1.
func readSeqs(br pgx.BatchResults, n int) (seqs []int64, bad int, err error) {
	seqs = make([]int64, n)
	for i := range n {
		err := br.QueryRow().Scan(&seqs[i])
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			seqs[i] = 0 // a duplicate
		case err != nil:
			if rowError(err) {
				return nil, i, err
			}
			return nil, -1, err
		}
	}
	return seqs, -1, nil
}

// notRunError is the error of a batch that the server refused before any
// row ran, so that sending it again cannot insert a row twice.
type notRunError struct{ err error }

func (e notRunError) Error() string { return e.err.Error() }
func (e notRunError) Unwrap() error { return e.err }

// rowError reports whether err is the server refusing one row's values
// (SQLSTATE classes 22 data exception and 23 integrity constraint
// violation), rather than a failure of the whole batch.
func rowError(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && (strings.HasPrefix(pe.Code, classDataException) || strings.HasPrefix(pe.Code, "23"))
}

// rowErr is the error of one row that the server refused inside a batch.
func rowErr(ctx context.Context, r *insertReq, err error) error {
	if isCode(err, codeForeignKeyViolation) {
		return fmt.Errorf("postgres: %s: ca %q does not exist: %w", r.op, r.caID, store.ErrNotFound)
	}
	return wrapErr(ctx, "postgres: "+r.op, err)
}
