package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
)

func newTrustStoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "truststore",
		Aliases: []string{"ts"},
		Short:   "Manage trust stores: the CAs and revocation sources gateways enforce",
		Long: `A trust store is a named, versioned set of CA certificates and revocation
sources that gateway listeners verify client certificates against
(trust_store: {name: NAME} in the gateway configuration). It holds CAs of
this Trustgate, whose revocations it follows by itself, external CA
certificates, and external CRLs, uploaded or fetched by the gateways from a
URL. Every change makes a new version. See docs/truststores.md.`,
		Args: argsUsage(cobra.NoArgs),
	}
	cmd.AddCommand(tsCreateCmd(g), tsListCmd(g), tsShowCmd(g), tsAddCACmd(g), tsRemoveCACmd(g),
		tsAddCRLCmd(g), tsRemoveCRLCmd(g), tsBundleCmd(g))
	return cmd
}

func tsCreateCmd(g *globals) *cobra.Command {
	var (
		cas    []string
		caFile string
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--ca CA]... [--ca-file BUNDLE.pem]",
		Short: "Create a trust store, optionally with CAs of this Trustgate and external CA certificates",
		Example: `  trustgate truststore create partners --ca demo-intermediate
  trustgate truststore create vendors --ca-file vendor-roots.pem`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := apiv1.CreateTrustStoreRequest{Name: args[0], CAs: cas}
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return usageError{fmt.Errorf("--ca-file: %w", err)}
				}
				r.CertificatesPEM = string(b)
			}
			return tsResult(cmd, g, func(c *client.Client) (*apiv1.TrustStore, error) { return c.CreateTrustStore(cmd.Context(), r) })
		},
	}
	cmd.Flags().StringArrayVar(&cas, "ca", nil, "a CA of this Trustgate, by name (repeatable); its revocations are followed")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "PEM bundle of external CA certificates")
	return cmd
}

func tsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List trust stores", Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tss, err := c.ListTrustStores(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				if tss == nil {
					tss = []apiv1.TrustStore{}
				}
				return printJSON(cmd.OutOrStdout(), apiv1.TrustStoreList{TrustStores: tss})
			}
			var rows [][]string
			for _, ts := range tss {
				rows = append(rows, []string{ts.Name, strconv.FormatInt(ts.Version, 10), strconv.Itoa(len(ts.CAs)),
					strconv.Itoa(len(ts.CRLs)), ts.UpdatedAt.Format(time.RFC3339)})
			}
			table(cmd.OutOrStdout(), []string{"NAME", "VERSION", "CAS", "CRLS", "UPDATED"}, rows)
			return nil
		},
	}
}

func tsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a trust store: its version, CAs and CRL sources", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tsResult(cmd, g, func(c *client.Client) (*apiv1.TrustStore, error) { return c.GetTrustStore(cmd.Context(), args[0]) })
		},
	}
}

func tsAddCACmd(g *globals) *cobra.Command {
	var caFile string
	cmd := &cobra.Command{
		Use:   "add-ca NAME (CA | --ca-file BUNDLE.pem)",
		Short: "Add a CA of this Trustgate by name, or external CA certificates from a PEM bundle",
		Example: `  trustgate truststore add-ca partners payments
  trustgate truststore add-ca partners --ca-file partner-root.pem`,
		Args: argsUsage(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r apiv1.AddTrustStoreCARequest
			switch {
			case len(args) == 2 && caFile == "":
				r.CA = args[1]
			case len(args) == 1 && caFile != "":
				b, err := os.ReadFile(caFile)
				if err != nil {
					return usageError{fmt.Errorf("--ca-file: %w", err)}
				}
				r.CertificatePEM = string(b)
			default:
				return usageError{fmt.Errorf("give a CA name or --ca-file, not both")}
			}
			return tsResult(cmd, g, func(c *client.Client) (*apiv1.TrustStore, error) {
				return c.AddTrustStoreCA(cmd.Context(), args[0], r)
			})
		},
	}
	cmd.Flags().StringVar(&caFile, "ca-file", "", "PEM bundle of external CA certificates")
	return cmd
}

func tsRemoveCACmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-ca NAME REF",
		Short: "Remove a CA: REF is a CA name, or an external certificate's SHA-256 fingerprint (as show lists it)",
		Args:  argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tsResult(cmd, g, func(c *client.Client) (*apiv1.TrustStore, error) {
				return c.RemoveTrustStoreCA(cmd.Context(), args[0], args[1])
			})
		},
	}
}

func tsAddCRLCmd(g *globals) *cobra.Command {
	var u string
	cmd := &cobra.Command{
		Use:   "add-crl NAME (FILE | --url URL)",
		Short: "Add an external CRL (DER or PEM FILE, signed by a CA of the store) or a CRL URL the gateways fetch",
		Long: `add-crl uploads a CRL, in DER or PEM, signed by an external CA of the trust
store; it replaces an older CRL of the same issuer and scope. With --url it
adds an http:// or https:// URL that every gateway fetches itself. CAs of
this Trustgate need neither: the store follows their revocations.`,
		Example: `  trustgate truststore add-crl partners partner-root.crl
  trustgate truststore add-crl partners --url http://pki.partner.example/root.crl`,
		Args: argsUsage(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r apiv1.AddTrustStoreCRLRequest
			switch {
			case len(args) == 2 && u == "":
				b, err := os.ReadFile(args[1])
				if err != nil {
					return usageError{err}
				}
				if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
					r.CRLPEM = string(b)
				} else {
					r.CRLDER = b
				}
			case len(args) == 1 && u != "":
				r.URL = u
			default:
				return usageError{fmt.Errorf("give a CRL file or --url, not both")}
			}
			return tsResult(cmd, g, func(c *client.Client) (*apiv1.TrustStore, error) {
				return c.AddTrustStoreCRL(cmd.Context(), args[0], r)
			})
		},
	}
	cmd.Flags().StringVar(&u, "url", "", "http:// or https:// URL of a CRL for the gateways to fetch")
	return cmd
}

func tsRemoveCRLCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "remove-crl NAME ID", Short: "Remove an external CRL source by ID (as show lists it)", Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tsResult(cmd, g, func(c *client.Client) (*apiv1.TrustStore, error) {
				return c.RemoveTrustStoreCRL(cmd.Context(), args[0], args[1])
			})
		},
	}
}

func tsBundleCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use: "bundle NAME [--out FILE]", Short: "Print the trust store's CA certificates as a PEM bundle", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.TrustStoreBundle(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeOut(cmd.OutOrStdout(), out, b, false)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the bundle here instead of stdout")
	return cmd
}

// tsResult runs one API call that answers with a trust store and prints it.
func tsResult(cmd *cobra.Command, g *globals, do func(*client.Client) (*apiv1.TrustStore, error)) error {
	return call(cmd, g, func(c *client.Client) (any, error) { return do(c) },
		func(_ io.Writer, v any) { printTrustStore(cmd, v.(*apiv1.TrustStore)) })
}

func printTrustStore(cmd *cobra.Command, ts *apiv1.TrustStore) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Name:     %s\nID:       %s\nVersion:  %d\nCreated:  %s\nUpdated:  %s\n",
		ts.Name, ts.ID, ts.Version, ts.CreatedAt.Format(time.RFC3339), ts.UpdatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "\nCAs (%d):\n", len(ts.CAs))
	if len(ts.CAs) > 0 {
		var rows [][]string
		for _, c := range ts.CAs {
			src := c.Source
			if c.State != "" && c.State != "active" {
				src += " (" + c.State + ")"
			}
			rows = append(rows, []string{"  " + c.Ref, src, c.NotAfter.Format("2006-01-02"), c.Subject})
		}
		table(w, []string{"  REF", "SOURCE", "NOT AFTER", "SUBJECT"}, rows)
	}
	fmt.Fprintf(w, "\nCRL sources (%d):\n", len(ts.CRLs))
	if len(ts.CRLs) > 0 {
		var rows [][]string
		for _, c := range ts.CRLs {
			what, next := c.URL, "-"
			if c.Source == "upload" {
				what = c.Issuer
				if c.Number != "" {
					what += " #" + c.Number
				}
			}
			if c.NextUpdate != nil {
				next = c.NextUpdate.Format(time.RFC3339)
			}
			rows = append(rows, []string{"  " + c.ID, c.Source, next, what})
		}
		table(w, []string{"  ID", "SOURCE", "NEXT UPDATE", "ISSUER OR URL"}, rows)
	}
	var ours []string
	for _, c := range ts.CAs {
		if c.Source == "ca" {
			ours = append(ours, c.Ref)
		}
	}
	if len(ours) > 0 {
		fmt.Fprintf(w, "\nRevocations of %s are followed automatically.\n", strings.Join(ours, ", "))
	}
}
