package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/trustgate/trustgate/internal/audit"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// seed writes n records to a new SQLite store and returns the path of its file.
func seed(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tg.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range n {
		r := &store.AuditRecord{At: at.Add(time.Duration(i) * time.Second), Actor: "alice", Action: "cert:Issue",
			Resource: "ca/issuing", Decision: "allow", Outcome: "ok", RequestID: fmt.Sprint(i), Source: "127.0.0.1",
			Detail: fmt.Sprintf("record certificate serial %x", 100+i)}
		if err := st.AppendAudit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// verify opens the store at path and verifies its audit log.
func verify(t *testing.T, path string) audit.Result {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := audit.Verify(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		sql     []string // run directly on the database file, as an intruder would
		seq     int64
		problem string
	}{
		{"intact", nil, 0, ""},
		{"edited detail", []string{`UPDATE audit SET detail = 'nothing to see' WHERE seq = 4`}, 4, "was changed"},
		{"edited actor", []string{`UPDATE audit SET actor = 'bob' WHERE seq = 7`}, 7, "was changed"},
		{"edited and rehashed alone", []string{`UPDATE audit SET actor = 'bob', hash = zeroblob(32) WHERE seq = 2`}, 2, "was changed"},
		{"deleted", []string{`DELETE FROM audit WHERE seq = 5`}, 5, "is missing"},
		{"deleted and renumbered", []string{`DELETE FROM audit WHERE seq = 5`, `UPDATE audit SET seq = seq - 1 WHERE seq > 5`}, 5, "does not follow"},
		{"reordered", []string{
			`UPDATE audit SET seq = -1 WHERE seq = 3`, `UPDATE audit SET seq = 3 WHERE seq = 6`, `UPDATE audit SET seq = 6 WHERE seq = -1`,
		}, 3, "does not follow"},
		{"inserted", []string{
			`UPDATE audit SET seq = seq + 1000 WHERE seq >= 5`, `UPDATE audit SET seq = seq - 999 WHERE seq >= 1005`,
			`INSERT INTO audit SELECT 5, at, actor, 'ca:Create', resource, decision, outcome, request_id, source, 'forged', prev_hash, hash FROM audit WHERE seq = 4`,
		}, 5, "does not follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := seed(t, 10)
			if len(tt.sql) > 0 {
				db, err := sql.Open("sqlite", path)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range tt.sql {
					if _, err := db.Exec(q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				db.Close()
			}
			res := verify(t, path)
			if tt.problem == "" {
				if !res.OK || res.Records != 10 || len(res.HeadHash) != 64 {
					t.Fatalf("intact log: %+v", res)
				}
				return
			}
			if res.OK {
				t.Fatalf("tampering not detected: %+v", res)
			}
			if res.Seq != tt.seq || !strings.Contains(res.Problem, tt.problem) {
				t.Errorf("detected at %d (%q), want %d (%q)", res.Seq, res.Problem, tt.seq, tt.problem)
			}
		})
	}
}
