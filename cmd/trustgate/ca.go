package main

import (
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

func newCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Manage certificate authorities", Args: argsUsage(cobra.NoArgs)}
	cmd.AddCommand(caCreateCmd(g), caListCmd(g), caShowCmd(g), caImportCertCmd(g), caExportKeyCmd(g),
		caActionCmd(g, "disable", "Stop a CA from issuing"), caActionCmd(g, "enable", "Let a disabled CA issue again"),
		caActionCmd(g, "offline", "Remove an exported root CA's key from the server (after ca export-key)"),
		caRotateCmd(g), caPEMCmd(g))
	return cmd
}

func caRotateCmd(g *globals) *cobra.Command {
	var in apiv1.RotateCARequest
	cmd := &cobra.Command{
		Use:   "rotate NAME [--name SUCCESSOR] [--validity D]",
		Short: "Create the successor of an intermediate CA; issuance through NAME moves to it",
		Long: `Creates a successor of the intermediate CA NAME (or of its newest generation)
with a new key, under the same parent, with the same path length, name
constraints, CRL partitions and key type. Issuance and renewal through NAME
go to the successor from then on; the old CA keeps its name, its CRL and its
OCSP answers until its certificates have expired. Trust stores that hold the
old CA get the successor added.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, g, func(c *client.Client) (any, error) { return c.RotateCA(cmd.Context(), args[0], in) },
				func(w io.Writer, v any) {
					r := v.(*apiv1.RotateCAResponse)
					fmt.Fprintf(w, "Rotated CA %s: generation %d is %s; issuance through %s now goes to it.\n", r.Old.Name, r.Generation, r.Successor.Name, args[0])
					if len(r.TrustStores) > 0 {
						fmt.Fprintf(w, "Added to trust stores: %s\n", strings.Join(r.TrustStores, ", "))
					}
					if r.Warning != "" {
						fmt.Fprintf(w, "Warning: %s\n", r.Warning)
					}
					fmt.Fprintln(w)
					printCA(cmd, &r.Successor)
				})
		},
	}
	cmd.Flags().StringVar(&in.Name, "name", "", "name of the successor (default NAME-g<N>)")
	cmd.Flags().StringVar(&in.Validity, "validity", "", "validity of the successor (default the old CA's lifetime, within the parent's)")
	return cmd
}

func caCreateCmd(g *globals) *cobra.Command {
	var r apiv1.CreateCARequest
	var nc apiv1.NameConstraints
	pathLen := -1
	cmd := &cobra.Command{
		Use:   "create --name NAME [--parent P | --external-parent]",
		Short: "Create a root CA, an intermediate, or an intermediate for an external (offline) root",
		Example: `  trustgate ca create --name root --key-type ec-p384 --subject "CN=Example Root,O=Example" --validity 20y
  trustgate ca create --name issuing --parent root --validity 5y
  trustgate ca create --name partner --external-parent   # prints the CSR for the offline root
  trustgate ca create --name payments --parent root --permit-dns svc.internal --permit-ip 10.20.0.0/16 --exclude-dns admin.svc.internal`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if r.Name == "" {
				return usageError{fmt.Errorf("--name is required")}
			}
			if pathLen >= 0 {
				r.PathLen = &pathLen
			}
			if nc.PermittedDNS != nil || nc.ExcludedDNS != nil || nc.PermittedIP != nil || nc.ExcludedIP != nil ||
				nc.PermittedURI != nil || nc.ExcludedURI != nil || nc.PermittedEmail != nil || nc.ExcludedEmail != nil {
				r.NameConstraints = &nc
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.CreateCA(cmd.Context(), r)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), out)
			}
			if out.CSRPEM != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "CA %q created, awaiting its certificate. Have the external root sign this CSR,\nthen run: trustgate ca import-cert %s --cert FILE\n", out.Name, out.Name)
				fmt.Fprint(cmd.OutOrStdout(), out.CSRPEM)
				return nil
			}
			printCA(cmd, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Name, "name", "", "CA name (lower-case letters, digits, . _ -)")
	f.StringVar(&r.Parent, "parent", "", "parent CA in Trustgate (none: a root)")
	f.BoolVar(&r.ExternalParent, "external-parent", false, "the parent is outside Trustgate: print a CSR")
	f.StringVar(&r.KeyType, "key-type", "ec-p256", "ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519")
	f.StringVar(&r.Subject, "subject", "", `subject DN, e.g. "CN=Payments CA,O=Example" (default CN=<name>)`)
	f.StringVar(&r.Validity, "validity", "", "validity, e.g. 10y, 5y, 365d (default 10y root, 5y intermediate, never past the parent)")
	f.IntVar(&r.CRLPartitions, "crl-partitions", 0, "spread this CA's certificates over N partition CRLs (/crl/NAME/{n}.crl); 0 or 1: one CRL")
	for _, c := range []struct {
		flag string
		v    *[]string
		help string
	}{
		{"permit-dns", &nc.PermittedDNS, "name constraint: a DNS domain certificates below this CA may name, with its subdomains (repeatable)"},
		{"exclude-dns", &nc.ExcludedDNS, "name constraint: a DNS domain they may never name (repeatable)"},
		{"permit-ip", &nc.PermittedIP, "name constraint: a permitted CIDR range (repeatable)"},
		{"exclude-ip", &nc.ExcludedIP, "name constraint: an excluded CIDR range (repeatable)"},
		{"permit-uri", &nc.PermittedURI, "name constraint: a permitted URI host, .domain for hosts below it (repeatable)"},
		{"exclude-uri", &nc.ExcludedURI, "name constraint: an excluded URI host (repeatable)"},
		{"permit-email", &nc.PermittedEmail, "name constraint: a permitted mailbox, host or .domain (repeatable)"},
		{"exclude-email", &nc.ExcludedEmail, "name constraint: an excluded mailbox, host or .domain (repeatable)"},
	} {
		f.StringArrayVar(c.v, c.flag, nil, c.help)
	}
	f.IntVar(&pathLen, "path-len", -1, "maximum number of CA levels below this one (default: none for a root, 0 for an intermediate)")
	return cmd
}

// caResult runs one API call that answers with a CA and prints the CA.
func caResult(cmd *cobra.Command, g *globals, do func(*client.Client) (*apiv1.CA, error)) error {
	return call(cmd, g, func(c *client.Client) (any, error) { return do(c) },
		func(_ io.Writer, v any) { printCA(cmd, v.(*apiv1.CA)) })
}

func printCA(cmd *cobra.Command, c *apiv1.CA) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Name:        %s\nID:          %s\nState:       %s\nSubject:     %s\nKey type:    %s\nDepth:       %d\n",
		c.Name, c.ID, c.State, c.Subject, c.KeyType, c.Depth)
	if c.Parent != "" {
		fmt.Fprintf(w, "Parent:      %s\n", c.Parent)
	}
	if c.ExternalParent {
		fmt.Fprintf(w, "Parent:      (external)\n")
	}
	if c.PathLen != nil {
		fmt.Fprintf(w, "Path length: %d\n", *c.PathLen)
	}
	if c.NotAfter != nil {
		fmt.Fprintf(w, "Serial:      %s\nNot before:  %s\nNot after:   %s\n", c.Serial, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	if c.KeyExported {
		fmt.Fprintf(w, "Key:         exported\n")
	}
	if c.Predecessor != "" {
		fmt.Fprintf(w, "Succeeds:    %s\n", c.Predecessor)
	}
	if c.Successor != "" {
		fmt.Fprintf(w, "Successor:   %s (issues in this CA's stead)\n", c.Successor)
	}
}

func caListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List CAs", Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			cas, err := c.ListCAs(cmd.Context())
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), apiv1.CAList{CAs: cas})
			}
			var rows [][]string
			for _, a := range cas {
				na := "-"
				if a.NotAfter != nil {
					na = a.NotAfter.Format("2006-01-02")
				}
				parent := a.Parent
				if a.ExternalParent {
					parent = "(external)"
				}
				if parent == "" {
					parent = "-"
				}
				rows = append(rows, []string{a.Name, a.State, a.KeyType, parent, strconv.Itoa(a.Depth), na, a.Subject})
			}
			table(cmd.OutOrStdout(), []string{"NAME", "STATE", "KEY", "PARENT", "DEPTH", "NOT AFTER", "SUBJECT"}, rows)
			return nil
		},
	}
}

func caShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a CA", Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return caResult(cmd, g, func(c *client.Client) (*apiv1.CA, error) { return c.GetCA(cmd.Context(), args[0]) })
		},
	}
}

func caImportCertCmd(g *globals) *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use: "import-cert NAME --cert FILE", Short: "Activate a CA with the certificate its external parent signed (FILE may append the chain)",
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.checkOutput(); err != nil {
				return err
			}
			if certFile == "" {
				return usageError{fmt.Errorf("--cert is required")}
			}
			b, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			return caResult(cmd, g, func(c *client.Client) (*apiv1.CA, error) { return c.ImportCACert(cmd.Context(), args[0], string(b)) })
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "PEM file: the CA certificate, optionally followed by its chain")
	return cmd
}

func caExportKeyCmd(g *globals) *cobra.Command {
	var passFile, out string
	cmd := &cobra.Command{
		Use:   "export-key NAME --passphrase-file F [--out FILE]",
		Short: "Export a root CA's key once, as encrypted PKCS#8 PEM, for offline keeping",
		Long: `export-key returns the root CA's private key encrypted under the passphrase
(PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC). It works once per CA. Then
"trustgate ca offline NAME" removes the key from the server.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if passFile == "" {
				return usageError{fmt.Errorf("--passphrase-file is required")}
			}
			pass, err := readSecretFile(passFile)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			pemKey, err := c.ExportCAKey(cmd.Context(), args[0], pass)
			if err != nil {
				return err
			}
			return writeOut(cmd.OutOrStdout(), out, []byte(pemKey), true)
		},
	}
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase (at least 8 bytes)")
	cmd.Flags().StringVar(&out, "out", "", "write the key here (mode 0600) instead of stdout")
	return cmd
}

func caActionCmd(g *globals, action, short string) *cobra.Command {
	return &cobra.Command{
		Use: action + " NAME", Short: short, Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return caResult(cmd, g, func(c *client.Client) (*apiv1.CA, error) { return c.CAAction(cmd.Context(), args[0], action) })
		},
	}
}

func caPEMCmd(g *globals) *cobra.Command {
	var chain bool
	cmd := &cobra.Command{
		Use: "pem NAME [--chain]", Short: "Print a CA certificate (with --chain, up to the root) as PEM",
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.CAPEM(cmd.Context(), args[0], chain)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().BoolVar(&chain, "chain", false, "include the parents up to the root")
	return cmd
}
