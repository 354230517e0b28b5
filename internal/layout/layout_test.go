package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/trustgate/trustgate/"

// order is the layout of docs/architecture.md, top to bottom.
var order = []string{
	"cmd/trustgate",
	"internal/server",
	"internal/gateway",
	"internal/agent",
	"internal/web",
	"internal/api",
	"internal/api/client",
	"internal/acme",
	"internal/lifecycle",
	"internal/ca",
	"internal/revocation",
	"internal/truststore",
	"internal/inventory",
	"internal/authz",
	"internal/storecopy",
	"internal/audit",
	"internal/keystore",
	"internal/store/sqlite",
	"internal/store/postgres",
	"internal/store/postgres/pgtest",
	"internal/store/storetest",
	"internal/store",
	"internal/truststore/verify",
	"internal/pki/pkitest",
	"internal/pki",
	"internal/config",
	"internal/apiv1",
	"internal/atomicfile",
	"internal/fault",
	"internal/layout",
}

// leaves import nothing of ours.
var leaves = map[string]bool{"internal/pki": true, "internal/apiv1": true, "internal/fault": true, "internal/atomicfile": true, "internal/truststore/verify": true}

// never lists edges that must not exist even transitively: the gateway and
// the agent stay stateless and small.
var never = map[string][]string{
	"internal/gateway":    {"internal/store", "internal/ca", "internal/keystore", "internal/truststore"},
	"internal/agent":      {"internal/store", "internal/ca", "internal/keystore"},
	"internal/api/client": {"internal/store", "internal/ca", "internal/server"},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	rank := map[string]int{}
	for i, p := range order {
		rank[p] = i
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		name := strings.TrimPrefix(p.ImportPath, module)
		if strings.HasPrefix(name, "bench/") {
			// Measuring tools are outside clients: they speak the wire
			// protocol and import only the leaves (wire types, pure X.509).
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module) && !leaves[strings.TrimPrefix(imp, module)] {
					t.Errorf("benchmark tool %s imports %s", name, imp)
				}
			}
			continue
		}
		r, ok := rank[name]
		if !ok {
			t.Errorf("package %s is not in the layout; add it to docs/architecture.md and to this test", name)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			if leaves[name] {
				t.Errorf("%s is a leaf but imports %s", name, dep)
			}
			if dr, ok := rank[dep]; ok && dr <= r {
				t.Errorf("%s imports %s, which is listed above it", name, dep)
			}
		}
		for _, bad := range never[name] {
			for _, d := range p.Deps {
				if d == module+bad {
					t.Errorf("%s depends on %s", name, bad)
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list found only %d packages", seen)
	}
}
