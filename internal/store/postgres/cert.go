package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

const certColumns = `issuer_key, serial, ca_id, subject, sans, profile,
	key_type, not_before, not_after, fingerprint, status, der, requester,
	imported, managed, created_at, revoked_at, reason, crl_partition`

const (
	selectCertSQL = "SELECT seq, " + certColumns + " FROM certificates"
	// insertCertSQL returns the new row's seq, or no row for a duplicate
	// (issuer_key, serial): in a batch, a duplicate must not abort the
	// other rows.
	insertCertSQL = "INSERT INTO certificates (" + certColumns + `) VALUES
	($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
	ON CONFLICT (issuer_key, serial) DO NOTHING
	RETURNING seq`
	getCertSQL = selectCertSQL + " WHERE serial = $1 ORDER BY seq DESC LIMIT 1"
)

// certArgs returns the arguments of insertCertSQL for c.
func certArgs(c *store.Certificate) ([]any, error) {
	if c.Partition < 0 || c.Partition > 1<<31-1 {
		return nil, fault.New(fault.Invalid, "CRL partition %d is out of range", c.Partition)
	}
	err := errors.Join(checkSANs(c.SANs), checkInt32("reason", c.Reason),
		checkTime("not before", c.NotBefore), checkTime("not after", c.NotAfter),
		checkTime("created at", c.CreatedAt), checkTime("revoked at", c.RevokedAt))
	if err != nil {
		return nil, err
	}
	return []any{
		c.IssuerKey, c.Serial, nullString(c.CAID), c.Subject, encodeSANs(c.SANs), c.Profile,
		c.KeyType, c.NotBefore, c.NotAfter, c.Fingerprint, string(c.Status), c.DER, c.Requester,
		c.Imported, c.Managed, c.CreatedAt, c.RevokedAt, c.Reason, c.Partition,
	}, nil
}

// GetCertificate returns the certificate with the serial; when several
// issuers used it, the one recorded last (the greatest Seq). A miss is an
// error wrapping store.ErrNotFound.
func (d *DB) GetCertificate(ctx context.Context, serial string) (*store.Certificate, error) {
	op := fmt.Sprintf("get certificate %q", serial)
	return d.getCert(ctx, op, getCertSQL, serial)
}

// getCert runs query, which selects at most one certificate, with keys.
func (d *DB) getCert(ctx context.Context, op, query string, keys ...string) (*store.Certificate, error) {
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if !storable(keys...) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	c, err := scanCert(d.pool.QueryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return c, nil
}

// CountCertificates returns how many certificates the CA with caID has
// recorded; caID "" counts imports of issuers Trustgate does not hold. An
// unknown CA has none. It counts rows (an index-only scan where the
// visibility map allows), so its cost grows with the CA's inventory.
func (d *DB) CountCertificates(ctx context.Context, caID string) (int64, error) {
	op := fmt.Sprintf("count certificates of ca %q", caID)
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	if !storable(caID) {
		return 0, nil
	}
	var row pgx.Row
	if caID == "" {
		row = d.pool.QueryRow(ctx, "SELECT count(*) FROM certificates WHERE ca_id IS NULL")
	} else {
		row = d.pool.QueryRow(ctx, "SELECT count(*) FROM certificates WHERE ca_id = $1", caID)
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		return 0, d.fail(ctx, op, err)
	}
	return n, nil
}

// ListCertificates returns up to f.Limit certificates with Seq > f.After that
// match every set field of f, in Seq order. Limit defaults to
// DefaultListLimit and is capped at MaxListLimit. A zero f.Now is Config.Now.
// SANContains matches a literal, case-sensitive substring of one SAN with
// strpos: no character is a pattern; a string holding a newline or NUL, which
// no stored SAN holds, matches nothing. The query is a range scan on seq
// (keyset pagination), never an OFFSET, so each page costs the same however
// deep it is. See the package documentation on walks that run during inserts.
func (d *DB) ListCertificates(ctx context.Context, f store.CertFilter) ([]*store.Certificate, error) {
	const op = "list certificates"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if strings.ContainsAny(f.SANContains, "\n\x00") || !storable(f.CAID, f.Serial, string(f.Status), f.SANContains) {
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

	var (
		q    strings.Builder
		args = []any{max(f.After, 0)}
	)
	q.WriteString(selectCertSQL)
	q.WriteString(" WHERE seq > $1")
	// cond appends "AND <column> <cmp> $n" with arg as $n.
	cond := func(expr string, arg any) {
		args = append(args, arg)
		q.WriteString(" AND ")
		q.WriteString(strings.ReplaceAll(expr, "$?", "$"+strconv.Itoa(len(args))))
	}
	if f.CAID != "" {
		cond("ca_id = $?", f.CAID)
	}
	if f.Serial != "" {
		cond("serial = $?", f.Serial)
	}
	if f.Status != "" {
		cond("status = $?", string(f.Status))
	}
	if f.Expired {
		cond("not_after <= $?", now)
	}
	if f.NotExpired {
		cond("not_after > $?", now)
	}
	if !f.ExpiresBy.IsZero() {
		cond("not_after <= $?", f.ExpiresBy)
	}
	if f.SANContains != "" {
		// strpos, not LIKE: a literal substring, so '%', '_' and '\' in
		// the argument are plain characters and nothing needs escaping.
		cond("EXISTS (SELECT FROM unnest(sans) AS san WHERE strpos(san, $?) > 0)", f.SANContains)
	}
	args = append(args, limit)
	q.WriteString(" ORDER BY seq LIMIT $" + strconv.Itoa(len(args)))

	rows, err := d.pool.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	defer rows.Close()
	certs := make([]*store.Certificate, 0, min(limit, 64))
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, d.fail(ctx, op, err)
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return certs, nil
}

// scanCert scans one row of "seq, " + certColumns.
func scanCert(row pgx.Row) (*store.Certificate, error) {
	var (
		c      store.Certificate
		caID   *string
		sans   []string
		status string
	)
	err := row.Scan(&c.Seq, &c.IssuerKey, &c.Serial, &caID, &c.Subject,
		&sans, &c.Profile, &c.KeyType, &c.NotBefore, &c.NotAfter, &c.Fingerprint, &status,
		&c.DER, &c.Requester, &c.Imported, &c.Managed, &c.CreatedAt, &c.RevokedAt,
		&c.Reason, &c.Partition)
	if err != nil {
		return nil, err
	}
	c.CAID = fromNull(caID)
	c.SANs = decodeSANs(sans)
	c.Status = store.CertStatus(status)
	c.NotBefore, c.NotAfter = fromDB(c.NotBefore), fromDB(c.NotAfter)
	c.CreatedAt, c.RevokedAt = fromDB(c.CreatedAt), fromDB(c.RevokedAt)
	return &c, nil
}
