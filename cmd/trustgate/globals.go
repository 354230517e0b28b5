package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/api/client"
)

// globals are the flags every command shares.
type globals struct {
	addr, token, cacert, output string
}

func (g *globals) client() (*client.Client, error) {
	tok := g.token
	if tok == "" {
		tok = os.Getenv("TRUSTGATE_TOKEN")
	}
	if g.addr == "" {
		return nil, usageError{errors.New("no API address: set TRUSTGATE_ADDR or --addr (after `trustgate dev`, source DIR/dev/env.sh)")}
	}
	if tok == "" {
		return nil, usageError{errors.New("no API token: set TRUSTGATE_TOKEN or --token")}
	}
	c, err := client.New(client.Config{Addr: g.addr, Token: tok, CACertFile: g.cacert})
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func (g *globals) checkOutput() error {
	if g.output != "text" && g.output != "json" {
		return usageError{fmt.Errorf("--output %q: use text or json", g.output)}
	}
	return nil
}

func (g *globals) json() bool { return g.output == "json" }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// argsUsage wraps cobra's positional-argument checks as usage errors.
func argsUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// readSecretFile reads a passphrase file, trimming one trailing newline.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read passphrase file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// writeOut writes data to path (0600 when secret) or to w when path is "" or "-".
func writeOut(w io.Writer, path string, data []byte, secret bool) error {
	if path == "" || path == "-" {
		_, err := w.Write(data)
		return err
	}
	mode := os.FileMode(0o644)
	if secret {
		mode = 0o600
	}
	return atomicWrite(path, data, mode)
}

// call runs one API call and prints its answer: as JSON with -o json,
// else with text.
func call(cmd *cobra.Command, g *globals, do func(*client.Client) (any, error), text func(io.Writer, any)) error {
	if err := g.checkOutput(); err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	out, err := do(c)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(cmd.OutOrStdout(), out)
	}
	text(cmd.OutOrStdout(), out)
	return nil
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
