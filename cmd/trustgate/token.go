package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/apiv1"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create bootstrap (enrolment) tokens for agents", Args: argsUsage(cobra.NoArgs)}
	cmd.AddCommand(tokenCreateCmd(g), tokenRevokeCmd(g))
	return cmd
}

func tokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "revoke ID", Short: "Revoke a bootstrap token (by the ID token create printed): enrolments with it are refused",
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, err := c.RevokeBootstrapToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bootstrap token %s for %q revoked (%d of %d uses spent)\n", tok.ID, tok.Name, tok.Uses, tok.MaxUses)
			return nil
		},
	}
}

func tokenCreateCmd(g *globals) *cobra.Command {
	var r apiv1.CreateBootstrapTokenRequest
	cmd := &cobra.Command{
		Use:   "create --ca NAME --profile P --name CN [--dns D]... [--uri U]... [--ip A]... [--max-validity 24h] [--expires-in 1h] [--uses 1]",
		Short: "Create a one-time enrolment token bound to a CA, a profile, a name and SANs",
		Long: `Create a bootstrap token. An agent that holds it obtains a certificate with the
common name NAME and only the SANs listed here (with none listed, the DNS name
NAME), under the profile and CA given, for at most --max-validity. Each
certificate obtained spends one of its --uses; it expires after --expires-in.
The token is printed once on stdout; only its SHA-256 is stored.`,
		Example: `  trustgate token create --ca issuing --profile server --name svc-a --dns svc-a.internal --max-validity 24h
  TOKEN=$(trustgate token create --ca issuing --profile client --name svc-b --uri spiffe://prod/svc-b --expires-in 15m)`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if r.CA == "" || r.Profile == "" || r.Name == "" {
				return usageError{fmt.Errorf("--ca, --profile and --name are required")}
			}
			if r.Uses < 0 {
				return usageError{fmt.Errorf("--uses must be at least 1")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, err := c.CreateBootstrapToken(cmd.Context(), r)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "bootstrap token %s for %q (%s on CA %s; SANs %s): %d use(s), expires %s\n",
				tok.ID, tok.Name, tok.Profile, tok.CA, strings.Join(tok.SANs, ", "), tok.MaxUses, tok.ExpiresAt.Format("2006-01-02T15:04:05Z07:00"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.CA, "ca", "", "issuing CA")
	f.StringVar(&r.Profile, "profile", "", "server, client or server-client")
	f.StringVar(&r.Name, "name", "", "the common name the certificate must carry")
	f.StringArrayVar(&r.DNS, "dns", nil, "DNS SAN the certificate may carry (repeatable)")
	f.StringArrayVar(&r.IP, "ip", nil, "IP SAN the certificate may carry (repeatable)")
	f.StringArrayVar(&r.URI, "uri", nil, "URI SAN, e.g. a SPIFFE ID, the certificate may carry (repeatable)")
	f.StringVar(&r.MaxValidity, "max-validity", "", "longest lifetime of a certificate obtained, e.g. 24h (default: the profile's maximum)")
	f.StringVar(&r.ExpiresIn, "expires-in", "", "how long the token can be used (default 1h, at most 30d)")
	f.IntVar(&r.Uses, "uses", 1, "how many certificates the token obtains")
	return cmd
}
