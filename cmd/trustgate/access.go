package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage access policies: who may do what, on which CAs and trust stores, under which conditions",
		Long: `A policy is a YAML or JSON document of statements:

  statements:
    - sid: issue-clients
      effect: allow                 # or deny; an explicit deny always wins
      actions: [cert:Issue]         # service:Verb, with * wildcards
      resources: [ca/issuing]       # ca/NAME, truststore/NAME, policy/NAME, principal/NAME, or *
      conditions:                   # issuance only: profiles, dns_names, uri_prefixes,
        profiles: [client]          # ip_ranges, emails, subject, key_types, max_validity
        dns_names: ["*.svc.internal"]
        max_validity: 24h

Evaluation is default deny. See docs/access.md.`,
		Args: argsUsage(cobra.NoArgs),
	}
	cmd.AddCommand(policyPutCmd(g), policyListCmd(g), policyShowCmd(g), policyDeleteCmd(g), policySimulateCmd(g))
	return cmd
}

func policyPutCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "put NAME --file POLICY.yaml",
		Short:   "Create or replace a policy; it applies to the next request",
		Example: "  trustgate policy put payments-team --file payments.yaml",
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError{errors.New("--file is required (- for standard input)")}
			}
			var doc []byte
			var err error
			if file == "-" {
				doc, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			} else {
				doc, err = os.ReadFile(file)
			}
			if err != nil {
				return usageError{fmt.Errorf("--file: %w", err)}
			}
			return call(cmd, g, func(c *client.Client) (any, error) { return c.PutPolicy(cmd.Context(), args[0], string(doc)) },
				func(w io.Writer, v any) { fmt.Fprintf(w, "policy %s stored\n", v.(*apiv1.Policy).Name) })
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the policy document, YAML or JSON (- for standard input)")
	return cmd
}

func policyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List policies", Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) {
				ps, err := c.ListPolicies(cmd.Context())
				return apiv1.PolicyList{Policies: nonNilSlice(ps)}, err
			}, func(w io.Writer, v any) {
				var rows [][]string
				for _, p := range v.(apiv1.PolicyList).Policies {
					rows = append(rows, []string{p.Name, p.UpdatedAt.Format(time.RFC3339)})
				}
				table(w, []string{"NAME", "UPDATED"}, rows)
			})
		},
	}
}

func policyShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a policy document", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) { return c.GetPolicy(cmd.Context(), args[0]) },
				func(w io.Writer, v any) { fmt.Fprintln(w, v.(*apiv1.Policy).Document) })
		},
	}
}

func policyDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a policy that no principal uses", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) { return c.DeletePolicy(cmd.Context(), args[0]) },
				func(w io.Writer, v any) { fmt.Fprintf(w, "policy %s deleted\n", v.(*apiv1.Policy).Name) })
		},
	}
}

func policySimulateCmd(g *globals) *cobra.Command {
	var r apiv1.SimulateRequest
	var subject string
	cmd := &cobra.Command{
		Use:   "simulate --principal P --action A --resource R [issuance facts]",
		Short: "Say what the policies answer to one request and which statement decides",
		Example: `  trustgate policy simulate --principal payments --action cert:Issue --resource ca/issuing \
      --profile client --dns api.svc.internal --validity 48h`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if r.Principal == "" || r.Action == "" || r.Resource == "" {
				return usageError{errors.New("--principal, --action and --resource are required")}
			}
			if subject != "" {
				r.Subject = map[string][]string{}
				for _, part := range strings.Split(subject, ",") {
					k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
					if !ok {
						return usageError{fmt.Errorf("--subject %q: use ATTR=VALUE,...", subject)}
					}
					r.Subject[k] = append(r.Subject[k], v)
				}
			}
			return call(cmd, g, func(c *client.Client) (any, error) { return c.Simulate(cmd.Context(), r) }, func(w io.Writer, v any) {
				d := v.(*apiv1.Decision)
				fmt.Fprintf(w, "decision: %s\n", strings.ToUpper(d.Decision))
				if d.Statement != "" {
					fmt.Fprintf(w, "statement: %s (policy %s)\n", d.Statement, d.Policy)
				}
				fmt.Fprintf(w, "reason: %s\n", d.Reason)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Principal, "principal", "", "the principal asking")
	f.StringVar(&r.Action, "action", "", "the action, e.g. cert:Issue")
	f.StringVar(&r.Resource, "resource", "", "the resource, e.g. ca/issuing")
	f.StringVar(&r.Profile, "profile", "", "issuance: the profile")
	f.StringArrayVar(&r.DNS, "dns", nil, "issuance: a DNS name (repeatable)")
	f.StringArrayVar(&r.URI, "uri", nil, "issuance: a URI (repeatable)")
	f.StringArrayVar(&r.IP, "ip", nil, "issuance: an IP address (repeatable)")
	f.StringArrayVar(&r.Email, "email", nil, "issuance: an email address (repeatable)")
	f.StringVar(&subject, "subject", "", "issuance: subject attributes, e.g. CN=api,O=Payments")
	f.StringVar(&r.KeyType, "key-type", "", "issuance: the key type, e.g. ec-p256")
	f.StringVar(&r.Validity, "validity", "", "issuance: the validity, e.g. 24h")
	return cmd
}

func newPrincipalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "principal",
		Short: "Manage principals (humans and services that call the API) and their API tokens",
		Args:  argsUsage(cobra.NoArgs),
	}
	cmd.AddCommand(principalCreateCmd(g), principalListCmd(g), principalShowCmd(g), principalUpdateCmd(g),
		principalTokenCreateCmd(g), principalTokensCmd(g), principalTokenRevokeCmd(g))
	return cmd
}

func principalCreateCmd(g *globals) *cobra.Command {
	var r apiv1.CreatePrincipalRequest
	cmd := &cobra.Command{
		Use:   "create NAME --policy P... [--kind human|service] [--identity CN=...]... [--token-ttl 90d]",
		Short: "Create a principal and print its first API token (shown once)",
		Example: `  trustgate principal create payments --policy payments-team --token-ttl 90d
  trustgate principal create alice --kind human --policy admin --identity dns:alice.ops.example -o json`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Name = args[0]
			if r.Policies == nil {
				r.Policies = []string{}
			}
			return call(cmd, g, func(c *client.Client) (any, error) { return c.CreatePrincipal(cmd.Context(), r) }, func(w io.Writer, v any) {
				out := v.(*apiv1.CreatedPrincipal)
				fmt.Fprintf(w, "principal %s created; its API token (shown once):\n%s\n", out.Principal.Name, out.Token)
			})
		},
	}
	cmd.Flags().StringArrayVar(&r.Policies, "policy", nil, "a policy to attach (repeatable)")
	cmd.Flags().StringVar(&r.Kind, "kind", "service", "human or service")
	cmd.Flags().StringArrayVar(&r.Identities, "identity", nil, "a client-certificate name that logs in as this principal: CN=..., dns:..., uri:..., email:... (repeatable)")
	cmd.Flags().StringVar(&r.TokenTTL, "token-ttl", "", "lifetime of the first token, e.g. 90d (default: no expiry)")
	return cmd
}

func principalView(w io.Writer, p *apiv1.Principal) {
	fmt.Fprintf(w, "name:        %s\nkind:        %s\npolicies:    %s\nidentities:  %s\ndisabled:    %t\ncreated:     %s\n",
		p.Name, p.Kind, strings.Join(p.Policies, ", "), strings.Join(p.Identities, ", "), p.Disabled, p.CreatedAt.Format(time.RFC3339))
}

func principalListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List principals", Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) {
				ps, err := c.ListPrincipals(cmd.Context())
				return apiv1.PrincipalList{Principals: nonNilSlice(ps)}, err
			}, func(w io.Writer, v any) {
				var rows [][]string
				for _, p := range v.(apiv1.PrincipalList).Principals {
					rows = append(rows, []string{p.Name, p.Kind, strings.Join(p.Policies, ","), strconv.FormatBool(p.Disabled)})
				}
				table(w, []string{"NAME", "KIND", "POLICIES", "DISABLED"}, rows)
			})
		},
	}
}

func principalShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a principal", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) { return c.GetPrincipal(cmd.Context(), args[0]) },
				func(w io.Writer, v any) { principalView(w, v.(*apiv1.Principal)) })
		},
	}
}

func principalUpdateCmd(g *globals) *cobra.Command {
	var (
		policies, identities []string
		disable, enable      bool
	)
	cmd := &cobra.Command{
		Use:     "update NAME [--policy P]... [--identity ID]... [--disable|--enable]",
		Short:   "Replace a principal's policies or identities, or disable or enable it",
		Example: "  trustgate principal update payments --policy payments-team --policy readers",
		Args:    argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r apiv1.UpdatePrincipalRequest
			if cmd.Flags().Changed("policy") {
				r.Policies = &policies
			}
			if cmd.Flags().Changed("identity") {
				r.Identities = &identities
			}
			switch {
			case disable && enable:
				return usageError{errors.New("--disable and --enable exclude each other")}
			case disable || enable:
				r.Disabled = &disable
			}
			return call(cmd, g, func(c *client.Client) (any, error) { return c.UpdatePrincipal(cmd.Context(), args[0], r) },
				func(w io.Writer, v any) { principalView(w, v.(*apiv1.Principal)) })
		},
	}
	cmd.Flags().StringArrayVar(&policies, "policy", nil, "the policies, replacing the current ones (repeatable)")
	cmd.Flags().StringArrayVar(&identities, "identity", nil, "the identities, replacing the current ones (repeatable)")
	cmd.Flags().BoolVar(&disable, "disable", false, "refuse every request of the principal")
	cmd.Flags().BoolVar(&enable, "enable", false, "accept the principal's requests again")
	return cmd
}

func principalTokenCreateCmd(g *globals) *cobra.Command {
	var ttl string
	cmd := &cobra.Command{
		Use: "token-create NAME [--ttl 90d]", Short: "Make another API token for a principal (shown once)",
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) { return c.CreateAPIToken(cmd.Context(), args[0], ttl) },
				func(w io.Writer, v any) { fmt.Fprintln(w, v.(*apiv1.CreatedToken).Token) })
		},
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 24h (default: no expiry)")
	return cmd
}

func principalTokensCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "tokens NAME", Short: "List a principal's API tokens (never their secrets)", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) {
				ts, err := c.ListAPITokens(cmd.Context(), args[0])
				return apiv1.APITokenList{Tokens: nonNilSlice(ts)}, err
			}, func(w io.Writer, v any) {
				var rows [][]string
				for _, t := range v.(apiv1.APITokenList).Tokens {
					exp := "never"
					if t.ExpiresAt != nil {
						exp = t.ExpiresAt.Format(time.RFC3339)
					}
					rows = append(rows, []string{t.ID, t.CreatedAt.Format(time.RFC3339), exp, strconv.FormatBool(t.Revoked)})
				}
				table(w, []string{"ID", "CREATED", "EXPIRES", "REVOKED"}, rows)
			})
		},
	}
}

func principalTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "token-revoke NAME ID", Short: "Revoke one of a principal's API tokens", Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) { return c.RevokeAPIToken(cmd.Context(), args[0], args[1]) },
				func(w io.Writer, v any) { fmt.Fprintf(w, "token %s revoked\n", v.(*apiv1.APIToken).ID) })
		},
	}
}

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the tamper-evident audit log; report a CA's certificates",
		Args:  argsUsage(cobra.NoArgs),
	}
	cmd.AddCommand(auditListCmd(g, "list", "List audit records"), auditListCmd(g, "export", "Export the whole audit log (use -o jsonl for one JSON record per line)"),
		auditVerifyCmd(g), auditReportCmd(g))
	return cmd
}

func auditListCmd(g *globals, use, short string) *cobra.Command {
	var since string
	var limit int
	cmd := &cobra.Command{
		Use: use + " [--since 2026-01-02T00:00:00Z|24h] [-o text|json|jsonl]", Short: short, Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" && g.output != "jsonl" {
				return usageError{fmt.Errorf("--output %q: use text, json or jsonl", g.output)}
			}
			q := url.Values{}
			if since != "" {
				if d, err := apiv1.ParseDuration(since); err == nil {
					q.Set("since", time.Now().Add(-d).UTC().Format(time.RFC3339))
				} else if _, err := time.Parse(time.RFC3339, since); err == nil {
					q.Set("since", since)
				} else {
					return usageError{fmt.Errorf("--since %q: an RFC 3339 time or a duration such as 24h", since)}
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var all []apiv1.AuditRecord
			var after int64
			for {
				q.Set("after", strconv.FormatInt(after, 10))
				q.Set("limit", "5000")
				page, err := c.ListAudit(cmd.Context(), q)
				if err != nil {
					return err
				}
				for _, r := range page.Records {
					switch g.output {
					case "jsonl":
						if err := printJSONLine(w, r); err != nil {
							return err
						}
					case "json":
						all = append(all, r)
					default:
						fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.At.Format(time.RFC3339), orDash(r.Actor), r.Action,
							r.Resource, r.Decision, r.Outcome, r.Detail)
					}
					if limit > 0 && r.Seq >= after+int64(limit) {
						break
					}
				}
				if page.Next == 0 || (limit > 0 && len(all) >= limit) {
					break
				}
				after = page.Next
			}
			if g.output == "json" {
				return printJSON(w, apiv1.AuditList{Records: nonNilSlice(all)})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records at or after this time (RFC 3339) or this long ago (e.g. 24h)")
	if use == "list" {
		cmd.Flags().IntVar(&limit, "limit", 0, "stop after about this many records (0: all)")
	}
	return cmd
}

func auditVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain; exit 1 and say where it breaks when a record was changed, deleted, inserted or reordered",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				if err := printJSON(cmd.OutOrStdout(), v); err != nil {
					return err
				}
			} else if v.OK {
				fmt.Fprintf(cmd.OutOrStdout(), "audit log intact: %d records; head hash %s\n", v.Records, v.HeadHash)
			}
			if !v.OK {
				return fmt.Errorf("audit log broken at record %d: %s", v.Seq, v.Problem)
			}
			return nil
		},
	}
}

func auditReportCmd(g *globals) *cobra.Command {
	var caName, format string
	cmd := &cobra.Command{
		Use:     "report --ca NAME [--format csv|json]",
		Short:   "Report every certificate a CA issued, with revocations (CSV or JSON)",
		Example: "  trustgate audit report --ca issuing --format csv > issuing.csv",
		Args:    argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caName == "" {
				return usageError{errors.New("--ca is required")}
			}
			if format != "csv" && format != "json" {
				return usageError{fmt.Errorf("--format %q: use csv or json", format)}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.AuditReport(cmd.Context(), caName, format)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&caName, "ca", "", "the CA")
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
