package api

import (
	"encoding/csv"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/audit"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/store"
)

// accessRoutes are the routes of principals, policies, API tokens and the
// audit log.
func accessRoutes() []Route {
	return []Route{
		{Method: "PUT", Path: "/v1/policies/{name}", Action: "policy:Put", Resource: "policy/{name}",
			Summary: "Create or replace a policy from a YAML or JSON document; it applies to the next request.",
			Request: apiv1.PutPolicyRequest{}, Response: apiv1.Policy{}, handle: putPolicy},
		{Method: "GET", Path: "/v1/policies", Action: "policy:List", Resource: "*", Summary: "List policies.",
			Response: apiv1.PolicyList{}, handle: listPolicies},
		{Method: "GET", Path: "/v1/policies/{name}", Action: "policy:Read", Resource: "policy/{name}", Summary: "Show a policy.",
			Response: apiv1.Policy{}, handle: getPolicy},
		{Method: "DELETE", Path: "/v1/policies/{name}", Action: "policy:Delete", Resource: "policy/{name}",
			Summary: "Delete a policy that no principal uses.", Response: apiv1.Policy{}, handle: deletePolicy},
		{Method: "POST", Path: "/v1/policies/simulate", Action: "policy:Simulate", Resource: "*",
			Summary: "Evaluate one question (principal, action, resource, issuance facts) against the principal's policies and say which statement decides.",
			Request: apiv1.SimulateRequest{}, Response: apiv1.Decision{}, handle: simulate},

		{Method: "POST", Path: "/v1/principals", Action: "principal:Create", Resource: "principal/*",
			Summary: "Create a principal with policies and return its first API token, shown once.",
			Request: apiv1.CreatePrincipalRequest{}, Response: apiv1.CreatedPrincipal{}, Status: 201, handle: createPrincipal},
		{Method: "GET", Path: "/v1/principals", Action: "principal:List", Resource: "*", Summary: "List principals.",
			Response: apiv1.PrincipalList{}, handle: listPrincipals},
		{Method: "GET", Path: "/v1/principals/{name}", Action: "principal:Read", Resource: "principal/{name}", Summary: "Show a principal.",
			Response: apiv1.Principal{}, handle: getPrincipal},
		{Method: "PATCH", Path: "/v1/principals/{name}", Action: "principal:Update", Resource: "principal/{name}",
			Summary: "Change a principal's policies, identities or disabled flag.",
			Request: apiv1.UpdatePrincipalRequest{}, Response: apiv1.Principal{}, handle: updatePrincipal},
		{Method: "POST", Path: "/v1/principals/{name}/tokens", Action: "token:Create", Resource: "principal/{name}",
			Summary: "Make another API token for a principal, shown once.",
			Request: apiv1.CreateTokenRequest{}, Response: apiv1.CreatedToken{}, Status: 201, handle: createToken},
		{Method: "GET", Path: "/v1/principals/{name}/tokens", Action: "token:List", Resource: "principal/{name}",
			Summary: "List a principal's API tokens (never their secrets).", Response: apiv1.APITokenList{}, handle: listTokens},
		{Method: "POST", Path: "/v1/principals/{name}/tokens/{id}/revoke", Action: "token:Revoke", Resource: "principal/{name}",
			Summary: "Revoke one of a principal's API tokens.", Response: apiv1.APIToken{}, handle: revokeToken},

		{Method: "GET", Path: "/v1/audit", Action: "audit:Read", Resource: "*",
			Summary: "Read the audit log in order, a page at a time.", Response: apiv1.AuditList{},
			Query: []Param{{"after", "only records after this seq (the next value of the previous page)"},
				{"since", "only records at or after this RFC 3339 time"}, {"limit", "page size, at most 5000"}},
			handle: listAudit},
		{Method: "GET", Path: "/v1/audit/verify", Action: "audit:Read", Resource: "*",
			Summary: "Check the audit log's hash chain and say where it first breaks.", Response: apiv1.AuditVerification{}, handle: verifyAudit},
		{Method: "GET", Path: "/v1/audit/report", Action: "audit:Read",
			Summary:  "The certificates a CA issued, with their revocations, as CSV (format=csv) or JSON.",
			Query:    []Param{{"ca", "CA name (required)"}, {"format", "json (default) or csv"}},
			Response: apiv1.CertificateList{}, handle: auditReport},
	}
}

// access returns the access-control service, or an error when the server
// was assembled without one.
func (r *request) access() (Access, AccessStore, error) {
	if r.h.cfg.Access == nil || r.h.cfg.AccessStore == nil {
		return nil, nil, fault.New(fault.Unavailable, "access control is not served here")
	}
	return r.h.cfg.Access, r.h.cfg.AccessStore, nil
}

func policyView(p *store.PolicyRecord) apiv1.Policy {
	return apiv1.Policy{Name: p.Name, Document: string(p.Document), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func putPolicy(r *request) (*result, error) {
	svc, _, err := r.access()
	if err != nil {
		return nil, err
	}
	var in apiv1.PutPolicyRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	rec, _, err := svc.PutPolicy(r.Context(), r.PathValue("name"), []byte(in.Document))
	if err != nil {
		return nil, err
	}
	return ok(policyView(rec))
}

func listPolicies(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	ps, err := st.ListPolicies(r.Context())
	if err != nil {
		return nil, err
	}
	out := apiv1.PolicyList{Policies: []apiv1.Policy{}}
	for _, p := range ps {
		out.Policies = append(out.Policies, policyView(p))
	}
	return ok(out)
}

func getPolicy(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	p, err := st.GetPolicy(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, notFoundAs(err, "policy %q does not exist", r.PathValue("name"))
	}
	return ok(policyView(p))
}

func deletePolicy(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if name == authz.AdminPolicy {
		return nil, fault.New(fault.Conflict, "policy %q is the bootstrap administrator's and cannot be deleted", name)
	}
	p, err := st.GetPolicy(r.Context(), name)
	if err != nil {
		return nil, notFoundAs(err, "policy %q does not exist", name)
	}
	if err := st.DeletePolicy(r.Context(), name); err != nil {
		if store.IsConflict(err) {
			return nil, fault.New(fault.Conflict, "policy %q is attached to principals; detach it first", name)
		}
		return nil, notFoundAs(err, "policy %q does not exist", name)
	}
	return ok(policyView(p))
}

func simulate(r *request) (*result, error) {
	svc, _, err := r.access()
	if err != nil {
		return nil, err
	}
	var in apiv1.SimulateRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.Principal == "" || in.Action == "" || in.Resource == "" {
		return nil, fault.New(fault.Invalid, "principal, action and resource are required")
	}
	q := authz.Query{Principal: in.Principal, Action: in.Action, Resource: in.Resource}
	if in.Profile != "" || len(in.DNS)+len(in.URI)+len(in.IP)+len(in.Email)+len(in.Subject) > 0 || in.KeyType != "" || in.Validity != "" {
		iss := &authz.Issuance{Profile: in.Profile, DNS: in.DNS, URIs: in.URI, Emails: in.Email, Subject: in.Subject, KeyType: in.KeyType}
		for _, s := range in.IP {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fault.New(fault.Invalid, "ip %q is not an IP address", s)
			}
			iss.IPs = append(iss.IPs, a)
		}
		if in.Validity != "" {
			if iss.Validity, err = apiv1.ParseDuration(in.Validity); err != nil {
				return nil, fault.New(fault.Invalid, "validity: %v", err)
			}
		}
		q.Issuance = iss
	}
	d, err := svc.Decide(r.Context(), q)
	if err != nil {
		return nil, err
	}
	out := apiv1.Decision{Decision: "deny", Policy: d.Policy, Statement: d.Statement, Reason: d.Reason}
	if d.Allowed {
		out.Decision = "allow"
	}
	return ok(out)
}

func principalView(p *store.Principal) apiv1.Principal {
	v := apiv1.Principal{Name: p.Name, Kind: p.Kind, Policies: p.Policies, Identities: p.Identities, Disabled: p.Disabled,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	if v.Policies == nil {
		v.Policies = []string{}
	}
	if v.Identities == nil {
		v.Identities = []string{}
	}
	return v
}

// optionalDuration parses a duration field that may be empty.
func optionalDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := apiv1.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fault.New(fault.Invalid, "%s %q is not a positive duration (e.g. 24h, 90d)", field, v)
	}
	return d, nil
}

func createPrincipal(r *request) (*result, error) {
	svc, _, err := r.access()
	if err != nil {
		return nil, err
	}
	var in apiv1.CreatePrincipalRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	ttl, err := optionalDuration("token_ttl", in.TokenTTL)
	if err != nil {
		return nil, err
	}
	p, secret, err := svc.CreatePrincipal(r.Context(), authz.NewPrincipal{Name: in.Name, Kind: in.Kind, Policies: in.Policies,
		Identities: in.Identities, TokenTTL: ttl})
	if err != nil {
		if store.IsNotFound(err) {
			return nil, fault.New(fault.NotFound, "a policy of %v does not exist", in.Policies)
		}
		if store.IsConflict(err) {
			return nil, fault.New(fault.Conflict, "principal %q already exists", in.Name)
		}
		return nil, err
	}
	r.w.Header().Set("Cache-Control", "no-store")
	return created(apiv1.CreatedPrincipal{Principal: principalView(p), Token: secret})
}

func listPrincipals(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	ps, err := st.ListPrincipals(r.Context())
	if err != nil {
		return nil, err
	}
	out := apiv1.PrincipalList{Principals: []apiv1.Principal{}}
	for _, p := range ps {
		out.Principals = append(out.Principals, principalView(p))
	}
	return ok(out)
}

func getPrincipal(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	p, err := st.GetPrincipal(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, notFoundAs(err, "principal %q does not exist", r.PathValue("name"))
	}
	return ok(principalView(p))
}

func updatePrincipal(r *request) (*result, error) {
	svc, _, err := r.access()
	if err != nil {
		return nil, err
	}
	var in apiv1.UpdatePrincipalRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	p, err := svc.UpdatePrincipal(r.Context(), name, func(p *store.Principal) error {
		if in.Policies != nil {
			p.Policies = *in.Policies
		}
		if in.Identities != nil {
			p.Identities = *in.Identities
		}
		if in.Disabled != nil {
			if *in.Disabled && name == r.principal {
				return fault.New(fault.Conflict, "a principal cannot disable itself")
			}
			p.Disabled = *in.Disabled
		}
		return nil
	})
	if err != nil {
		return nil, notFoundAs(err, "principal %q or a policy it names does not exist", name)
	}
	return ok(principalView(p))
}

func createToken(r *request) (*result, error) {
	svc, _, err := r.access()
	if err != nil {
		return nil, err
	}
	var in apiv1.CreateTokenRequest
	if err := r.decodeOptional(&in); err != nil {
		return nil, err
	}
	ttl, err := optionalDuration("ttl", in.TTL)
	if err != nil {
		return nil, err
	}
	id, secret, err := svc.CreateToken(r.Context(), r.PathValue("name"), ttl)
	if err != nil {
		return nil, notFoundAs(err, "principal %q does not exist", r.PathValue("name"))
	}
	r.w.Header().Set("Cache-Control", "no-store")
	return created(apiv1.CreatedToken{ID: id, Token: secret})
}

func tokenView(t *store.Token) apiv1.APIToken {
	v := apiv1.APIToken{ID: t.ID, Principal: t.Principal, CreatedAt: t.CreatedAt, Revoked: t.Revoked}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		v.ExpiresAt = &e
	}
	return v
}

func listTokens(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if _, err := st.GetPrincipal(r.Context(), name); err != nil {
		return nil, notFoundAs(err, "principal %q does not exist", name)
	}
	ts, err := st.ListTokens(r.Context(), name)
	if err != nil {
		return nil, err
	}
	out := apiv1.APITokenList{Tokens: []apiv1.APIToken{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenView(t))
	}
	return ok(out)
}

func revokeToken(r *request) (*result, error) {
	_, st, err := r.access()
	if err != nil {
		return nil, err
	}
	name, id := r.PathValue("name"), r.PathValue("id")
	ts, err := st.ListTokens(r.Context(), name)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.ID != id {
			continue
		}
		if err := st.RevokeToken(r.Context(), id); err != nil {
			return nil, err
		}
		t.Revoked = true
		return ok(tokenView(t))
	}
	return nil, fault.New(fault.NotFound, "principal %q has no token %q", name, id)
}

func auditView(a *store.AuditRecord) apiv1.AuditRecord {
	return apiv1.AuditRecord{Seq: a.Seq, At: a.At, Actor: a.Actor, Action: a.Action, Resource: a.Resource, Decision: a.Decision,
		Outcome: a.Outcome, RequestID: a.RequestID, Source: a.Source, Detail: a.Detail,
		PrevHash: hex.EncodeToString(a.PrevHash), Hash: hex.EncodeToString(a.Hash)}
}

func (r *request) auditLog() (AuditLog, error) {
	if r.h.cfg.Audit == nil {
		return nil, fault.New(fault.Unavailable, "the audit log is not served here")
	}
	return r.h.cfg.Audit, nil
}

func listAudit(r *request) (*result, error) {
	log, err := r.auditLog()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := store.AuditFilter{Limit: 1000}
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseInt(v, 10, 64); err != nil || f.After < 0 {
			return nil, fault.New(fault.Invalid, "after %q must be a record number", v)
		}
	}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return nil, fault.New(fault.Invalid, "since %q must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit <= 0 || f.Limit > 5000 {
			return nil, fault.New(fault.Invalid, "limit %q must be between 1 and 5000", v)
		}
	}
	recs, err := log.ListAudit(r.Context(), f)
	if err != nil {
		return nil, err
	}
	out := apiv1.AuditList{Records: make([]apiv1.AuditRecord, 0, len(recs))}
	for _, a := range recs {
		out.Records = append(out.Records, auditView(a))
	}
	if len(recs) == f.Limit {
		out.Next = recs[len(recs)-1].Seq
	}
	return ok(out)
}

func verifyAudit(r *request) (*result, error) {
	log, err := r.auditLog()
	if err != nil {
		return nil, err
	}
	res, err := audit.Verify(r.Context(), log)
	if err != nil {
		return nil, err
	}
	return ok(apiv1.AuditVerification{OK: res.OK, Records: res.Records, HeadHash: res.HeadHash, Seq: res.Seq, Problem: res.Problem})
}

// auditReport lists every certificate a CA issued, revoked ones with
// their revocation, as PCA's audit report does.
func auditReport(r *request) (*result, error) {
	name := r.URL.Query().Get("ca")
	if name == "" {
		return nil, fault.New(fault.Invalid, "ca is required")
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		return nil, fault.New(fault.Invalid, "format %q must be json or csv", format)
	}
	if err := r.authorize("ca/"+name, nil); err != nil {
		return nil, err
	}
	now := r.h.cfg.Now()
	var certs []apiv1.Certificate
	cursor := ""
	for {
		page, next, err := r.h.cfg.Inventory.List(r.Context(), inventory.Query{CA: name, Cursor: cursor, Limit: inventory.MaxLimit})
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			certs = append(certs, certView(c, name, now))
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if format != "csv" {
		if certs == nil {
			certs = []apiv1.Certificate{}
		}
		return ok(apiv1.CertificateList{Certificates: certs})
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"serial", "subject", "sans", "profile", "not_before", "not_after", "status", "revoked_at", "revocation_reason", "requester", "created_at"})
	for _, c := range certs {
		revokedAt := ""
		if c.RevokedAt != nil {
			revokedAt = c.RevokedAt.UTC().Format(time.RFC3339)
		}
		w.Write([]string{c.Serial, csvSafe(c.Subject), csvSafe(strings.Join(c.SANs, " ")), c.Profile, c.NotBefore.UTC().Format(time.RFC3339),
			c.NotAfter.UTC().Format(time.RFC3339), c.Status, revokedAt, c.RevocationReason, csvSafe(c.Requester), c.CreatedAt.UTC().Format(time.RFC3339)})
	}
	w.Flush()
	return &result{status: 200, raw: []byte(b.String()), contentType: "text/csv; charset=utf-8"}, nil
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// notFoundAs turns a store's not-found into a message for the caller.
func notFoundAs(err error, format string, args ...any) error {
	if store.IsNotFound(err) {
		return fault.New(fault.NotFound, format, args...)
	}
	return err
}
