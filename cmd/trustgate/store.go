package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/server"
)

func newStoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Maintain the control plane's database",
		Args:  argsUsage(cobra.NoArgs),
	}
	cmd.AddCommand(storeMigrateCmd(g))
	return cmd
}

func storeMigrateCmd(g *globals) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "migrate --from sqlite:DIR --to postgres://…",
		Short: "Copy everything into a new, empty store (moving up from SQLite to PostgreSQL) and check the copy",
		Long: `Copies CAs (their keys stay sealed to the same master key), certificates,
revocations, CRL numbers, trust stores, principals, policies, API tokens,
bootstrap tokens, the event outbox (with each delivery's state) and the audit chain into an empty store, then checks that the counts match and
that the audit chain verifies on the target with the source's head hash.
It refuses a target that holds anything, and a source whose audit chain is
broken. Stop the servers first; point them at the new store afterwards
(store: postgres://… or TRUSTGATE_STORE) with the same master key.`,
		Example: `  trustgate store migrate --from sqlite:/var/lib/trustgate --to postgres://trustgate@db.internal:5432/trustgate`,
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageError{errors.New("--from and --to are required")}
			}
			if err := g.checkOutput(); err != nil {
				return err
			}
			start := time.Now()
			progress := func(what string, n int64) {
				fmt.Fprintf(cmd.ErrOrStderr(), "copied %d %s (%s)\n", n, what, time.Since(start).Round(time.Millisecond))
			}
			rep, err := server.MigrateStore(cmd.Context(), from, to, progress)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied and checked: %d CAs, %d certificates, %d CRL numbers, %d trust stores, %d policies, %d principals, %d API tokens, %d bootstrap tokens, %d events, %d meta values, %d audit records (head %s) in %s\n",
				rep.CAs, rep.Certificates, rep.CRLNumbers, rep.TrustStores, rep.Policies, rep.Principals, rep.Tokens, rep.BootstrapTokens, rep.Events,
				rep.Meta, rep.AuditRecords, rep.AuditHead, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the source store: sqlite:DIR (a data directory), sqlite:FILE or postgres://…")
	cmd.Flags().StringVar(&to, "to", "", "the empty target store: postgres://… or sqlite:FILE")
	return cmd
}
