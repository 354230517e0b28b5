// Command revbench measures Trustgate's revocation publishing from the
// outside, over the wire, the way a relying party sees it:
//
//	revbench issue      issue certificates through the API, write a pool file
//	revbench mkpki      make a CA, an OCSP responder and certificates for
//	                    OpenSSL's responder (index.txt), write a pool file
//	revbench prefetch   fetch and verify one OCSP answer per pool entry into
//	                    files a static web server can serve
//	revbench load       OCSP GET load (RFC 5019) against one responder:
//	                    responses/s, latency, server CPU per response
//	revbench propagate  revoke certificates one after another and time until
//	                    the OCSP responder and the CRL show each revocation
//	revbench summary    turn the JSON lines of a run into Markdown tables
//
// It imports nothing of Trustgate but the API's wire types (internal/apiv1).
// bench/revocation/run.sh runs it all; see docs/benchmarks.md ("Revocation benchmarks").
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: revbench COMMAND [flags]

commands: issue, mkpki, prefetch, load, propagate, summary
"revbench COMMAND -h" lists the flags of one.`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func([]string) error{
		"issue":     cmdIssue,
		"mkpki":     cmdMkPKI,
		"prefetch":  cmdPrefetch,
		"load":      cmdLoad,
		"propagate": cmdPropagate,
		"summary":   cmdSummary,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "revbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
