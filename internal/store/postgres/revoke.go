package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// certByCAWhere selects the certificate CA $1 issued with serial $2 through
// the unique (issuer_key, serial) index: a CA's certificates carry its ID as
// issuer key. ca_id = $1 keeps imports, whose issuer key is "ext:...", out.
const certByCAWhere = " WHERE issuer_key = $1 AND ca_id = $1 AND serial = $2"

const (
	getCertByCASQL = selectCertSQL + certByCAWhere

	// revokeCertSQL revokes an active certificate, or finally revokes one on
	// hold ($5) with another reason, keeping its revocation time. It changes
	// no row, and returns none, when the certificate is missing or the
	// transition is not allowed. Expressions in SET see the row as it was.
	// Under READ COMMITTED, an UPDATE that waited for a concurrent one of the
	// same row evaluates its WHERE again on the row that one committed, so of
	// concurrent revocations exactly one matches.
	revokeCertSQL = `UPDATE certificates SET
	status = 'revoked',
	reason = $3,
	revoked_at = CASE status WHEN 'revoked' THEN revoked_at ELSE $4 END` +
		certByCAWhere + `
	AND (status = 'active' OR (status = 'revoked' AND reason = $5 AND $3 <> $5))
	RETURNING seq, ` + certColumns

	// releaseHoldSQL returns a certificate on hold ($4) to active; $3 is the
	// zero time.
	releaseHoldSQL = `UPDATE certificates SET status = 'active', reason = 0, revoked_at = $3` +
		certByCAWhere + ` AND status = 'revoked' AND reason = $4
	RETURNING seq, ` + certColumns

	nextCRLNumberSQL = `INSERT INTO crl_numbers (ca_id, partition, number) VALUES ($1, $2, 1)
	ON CONFLICT (ca_id, partition) DO UPDATE SET number = crl_numbers.number + 1
	RETURNING number`
)

// listRevokedSQL returns the ListRevoked query: $1 is the CA ID, then the
// partition when inPartition, then the expiry bound when expiresAfter. Each
// shape is its own statement, rather than one with "$n IS NULL OR ..."
// conditions, so that a cached generic plan still searches the index by
// partition. status = 'revoked' is a literal so that the partial index
// certificates_revoked applies; the index is in (ca_id, crl_partition,
// serial) order and includes every column read, so the query does not sort.
func listRevokedSQL(inPartition, expiresAfter bool) string {
	q := `SELECT serial, revoked_at, reason
	FROM certificates
	WHERE ca_id = $1 AND status = 'revoked'`
	n := 1
	if inPartition {
		n++
		q += fmt.Sprintf(" AND crl_partition = $%d", n)
	}
	if expiresAfter {
		n++
		q += fmt.Sprintf(" AND not_after > $%d", n)
	}
	return q + " ORDER BY crl_partition, serial"
}

// GetCertificateByCA returns the certificate the CA with caID issued with
// serial, or an error wrapping store.ErrNotFound. Imports (caID "") are never
// found.
func (d *DB) GetCertificateByCA(ctx context.Context, caID, serial string) (*store.Certificate, error) {
	op := fmt.Sprintf("get certificate (ca %q, serial %q)", caID, serial)
	return d.getCert(ctx, op, getCertByCASQL, caID, serial)
}

// RevokeCertificate revokes the certificate (caID, serial) with reason at
// time at and returns the record as committed. An active certificate is
// revoked; one on hold (store.ReasonCertificateHold) is revoked finally with
// another reason and keeps its revocation time. Anything else already revoked
// is an error wrapping store.ErrConflict, returned with the record as stored;
// a missing certificate is one wrapping store.ErrNotFound. A reason that is
// not an RFC 5280 CRLReason a CRL entry can carry (0-6, 9, 10), or a zero at,
// or one outside the years 0000-9999, is a fault.Invalid error.
//
// The change is one conditional UPDATE; when it matches nothing, a second
// statement, which sees every commit before it, reads the record to tell a
// missing certificate from a refused transition.
func (d *DB) RevokeCertificate(ctx context.Context, caID, serial string, reason int, at time.Time) (*store.Certificate, error) {
	op := fmt.Sprintf("revoke certificate (ca %q, serial %q)", caID, serial)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if err := checkReason(reason); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if at.IsZero() {
		return nil, fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "zero revocation time"))
	}
	if err := checkTime("revocation time", at); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	return d.transition(ctx, op, caID, serial, "already revoked", revokeCertSQL,
		caID, serial, reason, at, store.ReasonCertificateHold)
}

// ReleaseHold returns the certificate (caID, serial), on hold, to active,
// clearing its revocation time and reason, and returns the record as
// committed. A certificate not on hold is an error wrapping
// store.ErrConflict, returned with the record as stored; a missing one is an
// error wrapping store.ErrNotFound.
func (d *DB) ReleaseHold(ctx context.Context, caID, serial string) (*store.Certificate, error) {
	op := fmt.Sprintf("release hold (ca %q, serial %q)", caID, serial)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	return d.transition(ctx, op, caID, serial, "not on hold", releaseHoldSQL,
		caID, serial, time.Time{}, store.ReasonCertificateHold)
}

// transition runs update, a conditional UPDATE ... RETURNING of the
// certificate (caID, serial), with args. When it returns no row, transition
// reads the certificate: missing is store.ErrNotFound; present, the
// transition was refused, and the record is returned with an error wrapping
// store.ErrConflict that says why.
func (d *DB) transition(ctx context.Context, op, caID, serial, refused, update string, args ...any) (*store.Certificate, error) {
	if !storable(caID, serial) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	var c *store.Certificate
	err := d.write(ctx, op, func(ctx context.Context, conn *pgxpool.Conn) error {
		var err error
		c, err = scanCert(conn.QueryRow(ctx, update, args...))
		if !errors.Is(err, pgx.ErrNoRows) {
			return d.failIf(ctx, op, err)
		}
		// A new statement, so a new snapshot under READ COMMITTED: it sees
		// the commit of a concurrent transition that made the UPDATE match
		// nothing.
		c, err = scanCert(conn.QueryRow(ctx, getCertByCASQL, caID, serial))
		switch {
		case err == nil:
			return fmt.Errorf("postgres: %s: %s: %w", op, refused, store.ErrConflict)
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
		}
		c = nil
		return d.fail(ctx, op, err)
	})
	return c, err
}

// checkReason accepts the RFC 5280 section 5.3.1 CRLReason values a stored
// revocation can carry: 7 is unassigned, and removeFromCRL (8) only marks an
// entry of a delta CRL, never a certificate's state.
func checkReason(reason int) error {
	if reason < 0 || reason > 10 || reason == 7 || reason == 8 {
		return fault.New(fault.Invalid, "%d is not a revocation reason (RFC 5280 CRLReason 0-6, 9, 10)", reason)
	}
	return nil
}

// ListRevoked calls fn, in (partition, serial) order, with each revoked
// certificate (on hold included) of the CA with caID whose NotAfter is after
// expiresAfter, or every one when expiresAfter is zero; in one partition, or
// in all when partition < 0. An unknown CA has none. An error from fn stops
// the walk and is returned as it is.
//
// It streams: pgx reads the rows from the connection as fn consumes them,
// so memory does not grow with the number of entries, and fn sees the one
// snapshot of the query however long it runs. The walk holds a pooled
// connection meanwhile, and its snapshot keeps VACUUM from removing rows
// that died after it began. fn may call other methods of d; they use other
// connections of the pool, so they wait while Config.MaxConns walks run.
func (d *DB) ListRevoked(ctx context.Context, caID string, partition int, expiresAfter time.Time, fn func(store.RevokedEntry) error) error {
	op := fmt.Sprintf("list revoked of ca %q", caID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	args, ok := revokedArgs(caID, partition, expiresAfter)
	if !ok {
		return nil
	}
	rows, err := d.pool.Query(ctx, listRevokedSQL(partition >= 0, !expiresAfter.IsZero()), args...)
	if err != nil {
		return d.fail(ctx, op, err)
	}
	return d.walkRevoked(ctx, op, rows, fn)
}

// revokedArgs returns the arguments of the listRevokedSQL query for caID,
// partition and expiresAfter, and whether the query can list anything.
func revokedArgs(caID string, partition int, expiresAfter time.Time) ([]any, bool) {
	if !storable(caID) || partition > 1<<31-1 {
		return nil, false
	}
	args := []any{caID}
	if partition >= 0 {
		args = append(args, partition)
	}
	if !expiresAfter.IsZero() {
		args = append(args, expiresAfter)
	}
	return args, true
}

// walkRevoked calls fn with each row of rows, a listRevokedSQL query, and
// closes rows.
func (d *DB) walkRevoked(ctx context.Context, op string, rows pgx.Rows, fn func(store.RevokedEntry) error) error {
	defer rows.Close()
	// pgtype.DriverBytes points into pgx's read buffer instead of copying
	// the serial, and the other columns decode into values: an entry costs
	// no allocation (RevokedEntry.Serial is only valid during fn).
	var (
		e      store.RevokedEntry
		serial pgtype.DriverBytes
		rt     time.Time
	)
	dest := []any{&serial, &rt, &e.Reason}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return d.fail(ctx, op, err)
		}
		e.Serial, e.RevokedAt = serial, fromDB(rt)
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.fail(ctx, op, err)
	}
	return nil
}

// NextCRLNumber increments and returns the CRL number of (caID, partition),
// starting at 1, with one INSERT ... ON CONFLICT DO UPDATE. A nil return
// means the number is committed, so no later call, on any node, returns it or
// a smaller one. A caID that names no CA is an error wrapping
// store.ErrNotFound; a negative partition is a fault.Invalid error (the
// number belongs to one CRL, not to "all").
func (d *DB) NextCRLNumber(ctx context.Context, caID string, partition int) (int64, error) {
	op := fmt.Sprintf("next crl number (ca %q, partition %d)", caID, partition)
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	if partition < 0 || partition > 1<<31-1 {
		return 0, fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "CRL partition %d is out of range", partition))
	}
	if !storable(caID) {
		return 0, fmt.Errorf("postgres: %s: ca %q does not exist: %w", op, caID, store.ErrNotFound)
	}
	var n int64
	// A CRL number is the server's own business, never the change a
	// caller's audit record describes: no audit here.
	err := d.onConn(ctx, op, func(ctx context.Context, conn *pgxpool.Conn) error {
		err := conn.QueryRow(ctx, nextCRLNumberSQL, caID, partition).Scan(&n)
		if isCode(err, codeForeignKeyViolation) {
			return fmt.Errorf("postgres: %s: ca %q does not exist: %w", op, caID, store.ErrNotFound)
		}
		return d.failIf(ctx, op, err)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ReadCRL streams to fn, in (partition, serial) order, the revoked
// certificates q selects, as ListRevoked does, and then, when keep reports
// true, takes the next CRL number of (q.CAID, q.NumberPartition) and returns
// it; when keep reports false it returns 0 and uses up no number. A CA that
// does not exist is an error wrapping store.ErrNotFound; a negative
// NumberPartition is a fault.Invalid error.
//
// Numbers and lists move together because the number is taken first, by
// the upsert of NextCRLNumber inside one transaction, which locks the row
// of the sequence until the transaction ends: a concurrent ReadCRL of the
// same sequence, on any node, waits at its own upsert until this one
// commits or rolls back. The list is read by the next statement, and under
// READ COMMITTED a statement's snapshot is taken as it starts, so after the
// lock was granted, and so after the commit of every lower number: the
// list holds all that was committed before any lower number's list was
// read. The transaction is READ COMMITTED whatever the server's default:
// under REPEATABLE READ its snapshot would date from the start of the
// upsert, before the wait, and the upsert would then fail with a
// serialization error. keep false rolls the transaction back, number
// included. Builders of one sequence thus take turns, each holding the
// lock for one read of the list (about a second for a million entries);
// issuance and revocation never wait for it.
//
// ctx cancels the call until the commit, which then runs to its end (at
// most Config.WriteTimeout): an error from ctx means no number was used up.
func (d *DB) ReadCRL(ctx context.Context, q store.CRLQuery, fn func(store.RevokedEntry) error, keep func() bool) (int64, error) {
	op := fmt.Sprintf("read crl (ca %q, partition %d, number of partition %d)", q.CAID, q.Partition, q.NumberPartition)
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	if q.NumberPartition < 0 || q.NumberPartition > 1<<31-1 {
		return 0, fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "CRL partition %d is out of range", q.NumberPartition))
	}
	if !storable(q.CAID) {
		return 0, fmt.Errorf("postgres: %s: ca %q does not exist: %w", op, q.CAID, store.ErrNotFound)
	}
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return 0, d.fail(ctx, op, err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, d.fail(ctx, op, err)
	}
	defer func() {
		// After a Commit this does nothing; otherwise it ends the
		// transaction, lock and number included, even if ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.WriteTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	var n int64
	// A CRL number is the server's own business, never the change a
	// caller's audit record describes: no audit here.
	err = tx.QueryRow(ctx, nextCRLNumberSQL, q.CAID, q.NumberPartition).Scan(&n)
	if isCode(err, codeForeignKeyViolation) {
		return 0, fmt.Errorf("postgres: %s: ca %q does not exist: %w", op, q.CAID, store.ErrNotFound)
	}
	if err != nil {
		return 0, d.fail(ctx, op, err)
	}
	if args, ok := revokedArgs(q.CAID, q.Partition, q.ExpiresAfter); ok {
		rows, err := tx.Query(ctx, listRevokedSQL(q.Partition >= 0, !q.ExpiresAfter.IsZero()), args...)
		if err != nil {
			return 0, d.fail(ctx, op, err)
		}
		if err := d.walkRevoked(ctx, op, rows, fn); err != nil {
			return 0, err
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !keep() {
		return 0, nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.WriteTimeout)
	defer cancel()
	if err := tx.Commit(wctx); err != nil {
		return 0, d.fail(ctx, op, err)
	}
	return n, nil
}
