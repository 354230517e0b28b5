package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/storecopy"
)

// MigrateStore copies the store at from into the empty store at to (each
// "sqlite:PATH", where PATH is a database file or a data directory, or a
// postgres:// URL) and checks the copy. Run it with the servers stopped:
// what the source gains during the copy is not copied.
func MigrateStore(ctx context.Context, from, to string, progress storecopy.Progress) (*storecopy.Report, error) {
	src, err := openLocation(ctx, from, false)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := openLocation(ctx, to, true)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	return storecopy.Copy(ctx, src, dst, progress)
}

// openLocation opens a store named as in the store configuration key; a
// SQLite location may name a data directory.
func openLocation(ctx context.Context, loc string, create bool) (store.Store, error) {
	cfg := config.Server{Store: loc}
	kind, target, err := cfg.StoreLocation()
	if err != nil {
		return nil, err
	}
	if kind == config.StoreSQLite {
		if fi, err := os.Stat(target); err == nil && fi.IsDir() {
			target = filepath.Join(target, "trustgate.db")
		}
		cfg.Store = "sqlite:" + target
	}
	return openStore(ctx, cfg, create)
}
