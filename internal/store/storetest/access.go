package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// accessCases checks policies, principals, token listing and revocation,
// and the audit log: records chain, and a pending record commits with the
// write that carries it, or not at all.
func accessCases() []testCase {
	policy := func(name string) *store.PolicyRecord {
		return &store.PolicyRecord{Name: name, Document: []byte(`{"statements":[]}`), CreatedAt: t0, UpdatedAt: t0}
	}
	principal := func(name string, policies ...string) *store.Principal {
		return &store.Principal{Name: name, Kind: "service", Policies: policies, Identities: []string{"CN=" + name},
			CreatedAt: t0, UpdatedAt: t0}
	}
	pending := func(action string) *store.PendingAudit {
		return &store.PendingAudit{Record: store.AuditRecord{At: t0, Actor: "alice", Action: action, Resource: "ca/x",
			Decision: "allow", Outcome: "ok", RequestID: "req-1", Source: "127.0.0.1"}}
	}
	return []testCase{
		{"ok/policy-roundtrip", func(t *testing.T, s store.Store) {
			must(t, s.PutPolicy(ctx(t), policy("b")), "PutPolicy")
			must(t, s.PutPolicy(ctx(t), policy("a")), "PutPolicy")
			p := policy("a")
			p.Document = []byte(`{"statements":[{"effect":"allow"}]}`)
			p.UpdatedAt = t0.Add(1)
			must(t, s.PutPolicy(ctx(t), p), "PutPolicy(replace)")
			got, err := s.GetPolicy(ctx(t), "a")
			must(t, err, "GetPolicy")
			if !bytes.Equal(got.Document, p.Document) || !got.CreatedAt.Equal(t0) {
				t.Errorf("GetPolicy = %+v, want the replaced document and the first creation time", got)
			}
			all, err := s.ListPolicies(ctx(t))
			must(t, err, "ListPolicies")
			if len(all) != 2 || all[0].Name != "a" || all[1].Name != "b" {
				t.Errorf("ListPolicies = %d policies, want a, b", len(all))
			}
			_, err = s.GetPolicy(ctx(t), "missing")
			wantErr(t, err, store.ErrNotFound, "GetPolicy(missing)")
		}},
		{"ok/principal-roundtrip", func(t *testing.T, s store.Store) {
			must(t, s.PutPolicy(ctx(t), policy("p1")), "PutPolicy")
			must(t, s.PutPolicy(ctx(t), policy("p2")), "PutPolicy")
			pr := principal("svc-a", "p1")
			must(t, s.CreatePrincipal(ctx(t), pr), "CreatePrincipal")
			wantErr(t, s.CreatePrincipal(ctx(t), principal("svc-a")), store.ErrConflict, "CreatePrincipal(taken)")
			wantErr(t, s.CreatePrincipal(ctx(t), principal("svc-b", "nope")), store.ErrNotFound, "CreatePrincipal(unknown policy)")
			if _, err := s.GetPrincipal(ctx(t), "svc-b"); !store.IsNotFound(err) {
				t.Errorf("a refused CreatePrincipal left a principal behind: %v", err)
			}
			pr.Policies, pr.Disabled, pr.Identities = []string{"p2", "p1"}, true, nil
			must(t, s.UpdatePrincipal(ctx(t), pr), "UpdatePrincipal")
			got, err := s.GetPrincipal(ctx(t), "svc-a")
			must(t, err, "GetPrincipal")
			if fmt.Sprint(got.Policies) != "[p2 p1]" || !got.Disabled || len(got.Identities) != 0 || got.Kind != "service" {
				t.Errorf("GetPrincipal = %+v", got)
			}
			wantErr(t, s.UpdatePrincipal(ctx(t), principal("ghost")), store.ErrNotFound, "UpdatePrincipal(missing)")
			wantErr(t, s.DeletePolicy(ctx(t), "p1"), store.ErrConflict, "DeletePolicy(in use)")
			pr.Policies = []string{"p2"}
			must(t, s.UpdatePrincipal(ctx(t), pr), "UpdatePrincipal")
			must(t, s.DeletePolicy(ctx(t), "p1"), "DeletePolicy(unused)")
			wantErr(t, s.DeletePolicy(ctx(t), "p1"), store.ErrNotFound, "DeletePolicy(again)")
			all, err := s.ListPrincipals(ctx(t))
			must(t, err, "ListPrincipals")
			if len(all) != 1 {
				t.Errorf("ListPrincipals = %d, want 1", len(all))
			}
		}},
		{"ok/access-generation-moves-with-every-access-change", func(t *testing.T, s store.Store) {
			last, err := s.AccessGeneration(ctx(t))
			must(t, err, "AccessGeneration")
			step := func(what string, moves bool, err error) {
				t.Helper()
				must(t, err, "%s", what)
				gen, err := s.AccessGeneration(ctx(t))
				must(t, err, "AccessGeneration after %s", what)
				if moved := gen != last; moved != moves {
					t.Errorf("after %s the access generation went %d -> %d; want moved=%v", what, last, gen, moves)
				}
				last = gen
			}
			start := time.Now()
			step("PutPolicy", true, s.PutPolicy(ctx(t), policy("g1")))
			// The number moves to at least the time in microseconds, so
			// that it never comes back after a restore or a failover.
			if floor := start.Add(-time.Minute).UnixMicro(); last < floor {
				t.Errorf("access generation %d is below the time of the change (%d µs)", last, floor)
			}
			step("PutPolicy(replace)", true, s.PutPolicy(ctx(t), policy("g1")))
			step("PutPolicy(second)", true, s.PutPolicy(ctx(t), policy("g2")))
			pr := principal("svc-g", "g1")
			step("CreatePrincipal", true, s.CreatePrincipal(ctx(t), pr))
			pr.Policies = []string{"g1", "g2"}
			step("UpdatePrincipal(policies)", true, s.UpdatePrincipal(ctx(t), pr))
			pr.Disabled = true
			step("UpdatePrincipal(disabled)", true, s.UpdatePrincipal(ctx(t), pr))
			tok := tokenFixture("tok-g", "sg")
			step("CreateToken", true, s.CreateToken(ctx(t), tok))
			step("RevokeToken", true, s.RevokeToken(ctx(t), "tok-g"))
			pr.Policies = []string{"g1"}
			step("UpdatePrincipal(drop g2)", true, s.UpdatePrincipal(ctx(t), pr))
			step("DeletePolicy", true, s.DeletePolicy(ctx(t), "g2"))
			_, err = s.GetPrincipal(ctx(t), "svc-g")
			step("GetPrincipal", false, err)
			ca := createCA(t, s, caFixture("ca-g", "ca-g"))
			step("InsertCertificate", false, s.InsertCertificate(ctx(t), certFixture(ca.ID, "0a")))
		}},
		{"ok/tokens-list-revoke", func(t *testing.T, s store.Store) {
			a, b := tokenFixture("tok-a", "sa"), tokenFixture("tok-b", "sb")
			b.Principal = a.Principal
			b.CreatedAt = t0.Add(1000)
			must(t, s.CreateToken(ctx(t), a), "CreateToken")
			must(t, s.CreateToken(ctx(t), b), "CreateToken")
			must(t, s.CreateToken(ctx(t), tokenFixture("tok-c", "sc")), "CreateToken")
			got, err := s.ListTokens(ctx(t), a.Principal)
			must(t, err, "ListTokens")
			if len(got) != 2 || got[0].ID != "tok-b" || got[1].ID != "tok-a" {
				t.Errorf("ListTokens = %d tokens, want tok-b, tok-a", len(got))
			}
			all, err := s.ListTokens(ctx(t), "")
			must(t, err, "ListTokens(all)")
			if len(all) != 3 {
				t.Errorf("ListTokens(all) = %d, want 3", len(all))
			}
			must(t, s.RevokeToken(ctx(t), "tok-a"), "RevokeToken")
			wantErr(t, s.RevokeToken(ctx(t), "tok-zz"), store.ErrNotFound, "RevokeToken(missing)")
			tok, err := s.GetTokenByHash(ctx(t), a.Hash)
			must(t, err, "GetTokenByHash")
			if !tok.Revoked {
				t.Error("revoked token reads as live")
			}
		}},
		{"ok/audit-chain", func(t *testing.T, s store.Store) {
			for i := range 3 {
				r := pending(fmt.Sprintf("cert:Issue%d", i)).Record
				must(t, s.AppendAudit(ctx(t), &r), "AppendAudit")
				if r.Seq != int64(i+1) {
					t.Fatalf("record %d got seq %d", i, r.Seq)
				}
			}
			recs, err := s.ListAudit(ctx(t), store.AuditFilter{})
			must(t, err, "ListAudit")
			checkChain(t, recs, 3)
			page, err := s.ListAudit(ctx(t), store.AuditFilter{After: 1, Limit: 1})
			must(t, err, "ListAudit(page)")
			if len(page) != 1 || page[0].Seq != 2 {
				t.Errorf("ListAudit(After 1, Limit 1) = %d records", len(page))
			}
			none, err := s.ListAudit(ctx(t), store.AuditFilter{Since: t0.Add(time.Microsecond)})
			must(t, err, "ListAudit(since)")
			if len(none) != 0 {
				t.Errorf("ListAudit(Since after all) = %d records", len(none))
			}
		}},
		{"ok/audit-with-change", func(t *testing.T, s store.Store) {
			// Each kind of write appends the pending record with its change.
			ca := createCA(t, s, caFixture("ca-1", "issuing"))
			writes := []func(p *store.PendingAudit) error{
				func(p *store.PendingAudit) error { return s.PutPolicy(store.WithAudit(ctx(t), p), policy("pol")) },
				func(p *store.PendingAudit) error {
					return s.CreatePrincipal(store.WithAudit(ctx(t), p), principal("svc", "pol"))
				},
				func(p *store.PendingAudit) error {
					return s.CreateToken(store.WithAudit(ctx(t), p), tokenFixture("tok-1", "s1"))
				},
				func(p *store.PendingAudit) error {
					return s.InsertCertificate(store.WithAudit(ctx(t), p), certFixture(ca.ID, "0a"))
				},
				func(p *store.PendingAudit) error {
					_, err := s.RevokeCertificate(store.WithAudit(ctx(t), p), ca.ID, "0a", 1, t0)
					return err
				},
				func(p *store.PendingAudit) error { return s.UpdateCA(store.WithAudit(ctx(t), p), ca) },
				func(p *store.PendingAudit) error {
					return s.CreateTrustStore(store.WithAudit(ctx(t), p), tsFixture("ts-1", "edge", ca.ID))
				},
			}
			for i, w := range writes {
				p := pending(fmt.Sprintf("write:%d", i))
				must(t, w(p), "write %d", i)
				if !p.Written() {
					t.Errorf("write %d did not append its audit record", i)
				}
			}
			recs, err := s.ListAudit(ctx(t), store.AuditFilter{})
			must(t, err, "ListAudit")
			checkChain(t, recs, len(writes))
			for i, r := range recs {
				if r.Action != fmt.Sprintf("write:%d", i) || r.Detail == "" {
					t.Errorf("record %d = %q (%q)", i, r.Action, r.Detail)
				}
			}
		}},
		{"ok/audit-not-on-failure", func(t *testing.T, s store.Store) {
			createCA(t, s, caFixture("ca-1", "issuing"))
			p := pending("ca:Create")
			err := s.CreateCA(store.WithAudit(ctx(t), p), caFixture("ca-2", "issuing"))
			wantErr(t, err, store.ErrConflict, "CreateCA(taken name)")
			if p.Written() {
				t.Error("a failed write appended its audit record")
			}
			recs, err := s.ListAudit(ctx(t), store.AuditFilter{})
			must(t, err, "ListAudit")
			if len(recs) != 0 {
				t.Errorf("%d audit records after a failed write", len(recs))
			}
			// The record is free again: the caller appends it on its own.
			r := p.Record
			must(t, s.AppendAudit(ctx(t), &r), "AppendAudit")
		}},
		{"ok/audit-concurrent", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "issuing"))
			const n = 40
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					p := pending("cert:Issue")
					var err error
					if i%2 == 0 {
						err = s.InsertCertificate(store.WithAudit(ctx(t), p), certFixture(ca.ID, fmt.Sprintf("%x", 0x100+i)))
					} else {
						r := p.Record
						err = s.AppendAudit(ctx(t), &r)
					}
					if err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			recs, err := s.ListAudit(ctx(t), store.AuditFilter{})
			must(t, err, "ListAudit")
			checkChain(t, recs, n)
		}},
	}
}

// checkChain checks that recs are n records numbered from 1 whose hashes chain.
func checkChain(t *testing.T, recs []*store.AuditRecord, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("%d audit records, want %d", len(recs), n)
	}
	var prev []byte
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if !bytes.Equal(r.PrevHash, prev) || !bytes.Equal(r.Hash, store.AuditHash(r)) {
			t.Fatalf("record %d does not chain", r.Seq)
		}
		prev = r.Hash
	}
}
