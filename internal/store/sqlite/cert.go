package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

const certColumns = `issuer_key, serial, ca_id, subject, sans, profile,
	key_type, not_before, not_after, fingerprint, status, der, requester,
	imported, managed, created_at, revoked_at, reason, crl_partition`

const (
	selectCertSQL = "SELECT seq, " + certColumns + " FROM certificates"
	insertCertSQL = "INSERT INTO certificates (" + certColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

// The states of an insertReq. Only the transitions queued→taken (by the
// writer goroutine) and queued→abandoned (by a caller whose ctx is done) exist.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// insertReq is one InsertCertificate call waiting in the group-commit queue.
type insertReq struct {
	issuerKey, serial, caID string             // for error messages
	args                    []any              // bound to insertCertSQL
	audit                   *store.AuditRecord // appended with the row, when set
	state                   atomic.Int32
	done                    chan insertResult // buffered; receives exactly one result once taken
}

// insertResult is the outcome of one insertReq.
type insertResult struct {
	seq int64
	err error
}

// InsertCertificate records c and sets c.Seq. A duplicate (IssuerKey, Serial)
// is an error wrapping store.ErrConflict; a CAID that names no CA, one
// wrapping store.ErrNotFound; a negative Partition is a fault.Invalid error.
// The store does not check Partition against the CA's CRLPartitions: the
// issuer assigns it.
//
// Concurrent calls are committed together, in one transaction and one
// fsync. A nil return means the row is durable. Once the writer has taken
// the row into a batch the call waits for that batch's commit even if ctx
// is done, so an error from ctx means the row was never written; until then
// a done ctx ends the wait in the queue at once.
func (d *DB) InsertCertificate(ctx context.Context, c *store.Certificate) error {
	if err := d.begin(ctx, "insert certificate"); err != nil {
		return err
	}
	args, err := certArgs(c)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", certOp(c.IssuerKey, c.Serial), err)
	}
	pending := store.AuditFrom(ctx)
	req := &insertReq{
		issuerKey: c.IssuerKey,
		serial:    c.Serial,
		caID:      c.CAID,
		args:      args,
		audit:     pending.Claim(fmt.Sprintf("record certificate serial %s of issuer %s", c.Serial, c.IssuerKey)),
		done:      make(chan insertResult, 1),
	}
	var res insertResult
	res.err = errClosed // anything but nil until the commit says otherwise
	defer func() { pending.Settle(res.err == nil && req.audit != nil) }()

	// Close takes sendMu for writing before it stops the writer, so a
	// request sent under the read lock is always drained.
	d.sendMu.RLock()
	if d.closed.Load() {
		d.sendMu.RUnlock()
		return fmt.Errorf("sqlite: %s: %w", certOp(c.IssuerKey, c.Serial), errClosed)
	}
	select {
	case d.queue <- req:
		d.sendMu.RUnlock()
	case <-ctx.Done():
		d.sendMu.RUnlock()
		return fmt.Errorf("sqlite: %s: %w", certOp(c.IssuerKey, c.Serial), ctx.Err())
	}

	select {
	case res = <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("sqlite: %s: %w", certOp(c.IssuerKey, c.Serial), ctx.Err())
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

// certOp names an insertion in error messages.
func certOp(issuerKey, serial string) string {
	return fmt.Sprintf("insert certificate (issuer %q, serial %q)", issuerKey, serial)
}

// certArgs returns the arguments of insertCertSQL for c.
func certArgs(c *store.Certificate) ([]any, error) {
	if c.Partition < 0 {
		return nil, fault.New(fault.Invalid, "negative CRL partition %d", c.Partition)
	}
	sans, err := encodeSANs(c.SANs)
	if err != nil {
		return nil, err
	}
	nb, err1 := encodeTime(c.NotBefore)
	na, err2 := encodeTime(c.NotAfter)
	ct, err3 := encodeTime(c.CreatedAt)
	rt, err4 := encodeTime(c.RevokedAt)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return []any{
		c.IssuerKey, c.Serial, nullString(c.CAID), c.Subject, sans, c.Profile,
		c.KeyType, nb, na, c.Fingerprint, string(c.Status), c.DER, c.Requester,
		boolInt(c.Imported), boolInt(c.Managed), ct, rt, int64(c.Reason),
		int64(c.Partition),
	}, nil
}

// writer is the one goroutine that commits InsertCertificate calls. Each
// round it takes what is queued, up to MaxBatch, and commits it; while it
// commits, the next batch gathers in the queue. No timer delays a commit:
// batches grow exactly as much as the callers outpace the disk.
func (d *DB) writer() {
	defer close(d.writerDone)
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

// commitBatch inserts batch in one transaction, each row under its own
// savepoint, and sends every request its result once the commit is durable.
// A row that fails (a duplicate, an unknown CA) is rolled back to its
// savepoint and fails alone; a failure of the transaction fails them all.
func (d *DB) commitBatch(batch []*insertReq) {
	if len(batch) == 0 {
		return
	}
	results := make([]insertResult, len(batch))
	if err := d.insertBatch(batch, results); err != nil {
		for i, r := range batch {
			if results[i].err == nil {
				results[i] = insertResult{err: wrapErr("sqlite: "+certOp(r.issuerKey, r.serial), err)}
			}
		}
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// insertBatch runs the transaction of commitBatch, filling results for the
// rows that fail alone and the seq of the others. A non-nil error means
// nothing was committed.
func (d *DB) insertBatch(batch []*insertReq, results []insertResult) (err error) {
	// The transaction belongs to no caller: no caller's ctx may roll back
	// rows that other callers are waiting for.
	ctx := context.Background()
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ins, save := tx.StmtContext(ctx, d.insCert), tx.StmtContext(ctx, d.spSave)
	release, rollback := tx.StmtContext(ctx, d.spRelease), tx.StmtContext(ctx, d.spRollback)
	for i, r := range batch {
		if _, err := save.ExecContext(ctx); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		res, ierr := ins.ExecContext(ctx, r.args...)
		if ierr == nil {
			results[i].seq, ierr = res.LastInsertId()
		}
		if ierr == nil && r.audit != nil {
			ierr = d.appendAudit(ctx, tx, r.audit)
		}
		if ierr != nil {
			if _, err := rollback.ExecContext(ctx); err != nil {
				return fmt.Errorf("rollback to savepoint: %w (after %w)", err, ierr)
			}
			results[i].err = rowErr(r, ierr)
		}
		if _, err := release.ExecContext(ctx); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rowErr is the error of one row that failed inside a batch.
func rowErr(r *insertReq, err error) error {
	op := "sqlite: " + certOp(r.issuerKey, r.serial)
	if isForeignKey(err) {
		return fmt.Errorf("%s: ca %q does not exist: %w", op, r.caID, store.ErrNotFound)
	}
	return wrapErr(op, err)
}

// GetCertificate returns the certificate with the serial; when several
// issuers used it, the one recorded last. A miss is an error wrapping
// store.ErrNotFound.
func (d *DB) GetCertificate(ctx context.Context, serial string) (*store.Certificate, error) {
	op := fmt.Sprintf("get certificate %q", serial)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	c, err := scanCert(d.getCert.QueryRowContext(ctx, serial))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return c, nil
}

// CountCertificates returns how many certificates the CA with caID has
// recorded; caID "" counts imports of issuers Trustgate does not hold. An
// unknown CA has none.
func (d *DB) CountCertificates(ctx context.Context, caID string) (int64, error) {
	op := fmt.Sprintf("count certificates of ca %q", caID)
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	var row *sql.Row
	if caID == "" {
		row = d.countImports.QueryRowContext(ctx)
	} else {
		row = d.countCerts.QueryRowContext(ctx, caID)
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, wrapErr("sqlite: "+op, err)
	}
	return n, nil
}

// listShape is the set of CertFilter fields in use; each shape has its own
// prepared query.
type listShape uint8

const (
	byCA listShape = 1 << iota
	bySerial
	byStatus
	byExpired
	byNotExpired
	byExpiresBy
	bySAN
)

// ListCertificates returns up to f.Limit certificates with Seq > f.After that
// match every set field of f, in Seq order. Limit defaults to
// DefaultListLimit and is capped at MaxListLimit. A zero f.Now is Config.Now.
// SANContains matches a literal, case-sensitive substring of one SAN: no
// character is a pattern, and a string holding a newline or NUL matches
// nothing. The query is a range scan on seq (keyset pagination), never an
// OFFSET, so each page costs the same however deep it is.
func (d *DB) ListCertificates(ctx context.Context, f store.CertFilter) ([]*store.Certificate, error) {
	const op = "list certificates"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if strings.ContainsAny(f.SANContains, sanSep+"\x00") {
		return nil, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	now := f.Now
	if now.IsZero() {
		now = d.cfg.Now()
	}
	nowText, err := encodeTime(now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}

	var shape listShape
	args := []any{max(f.After, 0)}
	if f.CAID != "" {
		shape |= byCA
		args = append(args, f.CAID)
	}
	if f.Serial != "" {
		shape |= bySerial
		args = append(args, f.Serial)
	}
	if f.Status != "" {
		shape |= byStatus
		args = append(args, string(f.Status))
	}
	if f.Expired {
		shape |= byExpired
		args = append(args, nowText)
	}
	if f.NotExpired {
		shape |= byNotExpired
		args = append(args, nowText)
	}
	if !f.ExpiresBy.IsZero() {
		by, err := encodeTime(f.ExpiresBy)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		shape |= byExpiresBy
		args = append(args, by)
	}
	if f.SANContains != "" {
		shape |= bySAN
		args = append(args, f.SANContains)
	}
	args = append(args, limit)

	stmt, err := d.listStmt(ctx, shape)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	defer rows.Close()
	certs := make([]*store.Certificate, 0, min(limit, 64))
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, wrapErr("sqlite: "+op, err)
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return certs, nil
}

// listSQL returns the ListCertificates query of a shape. Its arguments are
// After, then one per set bit in bit order, then the limit.
func listSQL(shape listShape) string {
	var b strings.Builder
	b.WriteString(selectCertSQL)
	b.WriteString(" WHERE seq > ?")
	for _, c := range []struct {
		bit  listShape
		cond string
	}{
		{byCA, "ca_id = ?"},
		{bySerial, "serial = ?"},
		{byStatus, "status = ?"},
		{byExpired, "not_after <= ?"},
		{byNotExpired, "not_after > ?"},
		{byExpiresBy, "not_after <= ?"},
		// instr, not LIKE: a literal substring, so '%' and '_' in the
		// argument are plain characters and nothing needs escaping.
		{bySAN, "instr(sans, ?) > 0"},
	} {
		if shape&c.bit != 0 {
			b.WriteString(" AND ")
			b.WriteString(c.cond)
		}
	}
	b.WriteString(" ORDER BY seq LIMIT ?")
	return b.String()
}

// listStmt returns the prepared query of shape, preparing it on first use.
func (d *DB) listStmt(ctx context.Context, shape listShape) (*sql.Stmt, error) {
	d.listMu.Lock()
	defer d.listMu.Unlock()
	if d.listStmts == nil {
		return nil, errClosed
	}
	if s, ok := d.listStmts[shape]; ok {
		return s, nil
	}
	s, err := d.r.PrepareContext(ctx, listSQL(shape))
	if err != nil {
		return nil, wrapErr("prepare", err)
	}
	d.listStmts[shape] = s
	return s, nil
}

// scanCert scans one row of "seq, " + certColumns.
func scanCert(s scanner) (*store.Certificate, error) {
	var (
		c                 store.Certificate
		sans, status      string
		nb, na, ct, rt    string
		imported, managed int64
		reason, partition int64
	)
	err := s.Scan(&c.Seq, &c.IssuerKey, &c.Serial, nullStr{&c.CAID}, &c.Subject,
		&sans, &c.Profile, &c.KeyType, &nb, &na, &c.Fingerprint, &status,
		blob{&c.DER}, &c.Requester, &imported, &managed, &ct, &rt, &reason, &partition)
	if err != nil {
		return nil, err
	}
	c.Status = store.CertStatus(status)
	c.Imported = imported != 0
	c.Managed = managed != 0
	c.Reason = int(reason)
	c.Partition = int(partition)
	var errs [5]error
	c.SANs, errs[0] = decodeSANs(sans)
	c.NotBefore, errs[1] = decodeTime(nb)
	c.NotAfter, errs[2] = decodeTime(na)
	c.CreatedAt, errs[3] = decodeTime(ct)
	c.RevokedAt, errs[4] = decodeTime(rt)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("certificate seq %d: %w", c.Seq, err)
	}
	return &c, nil
}
