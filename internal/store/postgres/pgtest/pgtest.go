// Package pgtest gives a test a PostgreSQL schema of its own on the test
// server, for the tests of packages above the store that run Trustgate on
// PostgreSQL for real.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// URLEnv names the environment variable that points the tests at another
// PostgreSQL server.
const URLEnv = "TRUSTGATE_TEST_POSTGRES"

// URL returns the test server's URL: $TRUSTGATE_TEST_POSTGRES, or the
// server that .ci/run starts.
func URL() string {
	if u := os.Getenv(URLEnv); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Schema is a new, empty schema on the test server.
type Schema struct {
	// Name is the schema's name.
	Name string
	// URL is the server's URL with search_path set to Name: a store
	// opened on it keeps its tables there.
	URL string
	// Admin is a connection to the server outside the schema, for the
	// test's own queries from its own goroutine; it is closed at cleanup.
	Admin *pgx.Conn
}

// NewSchema creates a schema that is dropped when the test ends. It skips
// the test when no server answers. The name is tg_test_<unix time>_<hex>,
// as the store's own test schemas are named, so that their sweep drops the
// leftovers of killed test binaries after an hour.
func NewSchema(tb testing.TB) *Schema {
	tb.Helper()
	base, err := url.Parse(URL())
	if err != nil {
		tb.Fatalf("%s: %v", URLEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base.String())
	if err != nil {
		tb.Skipf("no PostgreSQL at %s (set %s, or start the server: "+
			"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v", base.Redacted(), URLEnv, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := fmt.Sprintf("tg_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b))
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		admin.Close(ctx)
		tb.Fatalf("create schema %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
		admin.Close(ctx)
	})
	q := base.Query()
	q.Set("search_path", name)
	base.RawQuery = q.Encode()
	return &Schema{Name: name, URL: base.String(), Admin: admin}
}
