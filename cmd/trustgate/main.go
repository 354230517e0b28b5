// Command trustgate is Trustgate's single binary: the control plane
// (`server`, `dev`, `init`) and the operator CLI that talks to its API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/api/client"
)

// Exit codes that scripts can rely on.
const (
	exitOK          = 0
	exitError       = 1 // anything else
	exitUsage       = 2 // bad flags or arguments
	exitNotFound    = 3 // the named object does not exist (HTTP 404)
	exitConflict    = 4 // the object exists or is in the wrong state (HTTP 409)
	exitAuth        = 5 // missing or refused credentials (HTTP 401/403)
	exitUnavailable = 6 // the server cannot be reached, is unavailable or asks to slow down (HTTP 503, 429, network): retry later
	exitInvalid     = 7 // the server refused the request as invalid (HTTP 400, 413)
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "Error:", err)
	return exitCode(err)
}

func exitCode(err error) int {
	var ue usageError
	var ce *client.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce):
		switch {
		case ce.Status == 404:
			return exitNotFound
		case ce.Status == 409:
			return exitConflict
		case ce.Status == 401 || ce.Status == 403:
			return exitAuth
		case ce.Status == 400 || ce.Status == 413 || ce.Status == 422:
			return exitInvalid
		case ce.Status == 503 || ce.Status == 429:
			return exitUnavailable
		}
		return exitError
	case isNetErr(err):
		return exitUnavailable
	}
	return exitError
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "trustgate",
		Short: "Private CA, certificate inventory and mTLS trust for your own machines",
		Long: `Trustgate runs a private CA hierarchy, keeps an inventory of every certificate,
and serves an HTTP API; the same binary is the operator CLI.

Quick start:  trustgate dev
CLI commands read TRUSTGATE_ADDR, TRUSTGATE_TOKEN and TRUSTGATE_CACERT
(source DIR/dev/env.sh after "trustgate dev").`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.addr, "addr", os.Getenv("TRUSTGATE_ADDR"), "API address (env TRUSTGATE_ADDR)")
	pf.StringVar(&g.token, "token", "", "API token (env TRUSTGATE_TOKEN; prefer the environment: flags show in ps)")
	pf.StringVar(&g.cacert, "cacert", os.Getenv("TRUSTGATE_CACERT"), "PEM file that verifies the API's certificate (env TRUSTGATE_CACERT)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(
		newDevCmd(g), newInitCmd(g), newServerCmd(g), newGatewayCmd(g),
		newCACmd(g), newCertCmd(g), newTrustStoreCmd(g), newPolicyCmd(g), newPrincipalCmd(g), newAuditCmd(g), newStoreCmd(g),
		newTokenCmd(g), newAgentCmd(g), newVersionCmd(g),
	)
	return root
}
