package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
)

// crlUploadBodyBytes is the body limit of a CRL upload: a 16 MiB CRL
// (truststore.MaxCRLBytes) in base64 or PEM inside JSON, with room.
const crlUploadBodyBytes = 24 << 20

// trustStores returns the trust-store service, or an error when the server
// was assembled without one.
func (r *request) trustStores() (TrustStores, error) {
	if r.h.cfg.TrustStores == nil {
		return nil, fault.New(fault.Unavailable, "trust stores are not served here")
	}
	return r.h.cfg.TrustStores, nil
}

func createTrustStore(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	var in apiv1.CreateTrustStoreRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	ts, err := svc.Create(r.Context(), in)
	if err != nil {
		return nil, err
	}
	return created(ts)
}

func listTrustStores(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	tss, err := svc.List(r.Context())
	if err != nil {
		return nil, err
	}
	if tss == nil {
		tss = []apiv1.TrustStore{}
	}
	return ok(apiv1.TrustStoreList{TrustStores: tss})
}

func getTrustStore(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	ts, err := svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return ok(ts)
}

func addTrustStoreCA(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	var in apiv1.AddTrustStoreCARequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	ts, err := svc.AddCA(r.Context(), r.PathValue("name"), in)
	if err != nil {
		return nil, err
	}
	return ok(ts)
}

func removeTrustStoreCA(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	ts, err := svc.RemoveCA(r.Context(), r.PathValue("name"), r.PathValue("ref"))
	if err != nil {
		return nil, err
	}
	return ok(ts)
}

func addTrustStoreCRL(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	var in apiv1.AddTrustStoreCRLRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	ts, err := svc.AddCRL(r.Context(), r.PathValue("name"), in)
	if err != nil {
		return nil, err
	}
	return ok(ts)
}

func removeTrustStoreCRL(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	ts, err := svc.RemoveCRL(r.Context(), r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return ok(ts)
}

func trustStoreBundle(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	b, err := svc.Bundle(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return &result{status: http.StatusOK, raw: b, contentType: "application/x-pem-file"}, nil
}

// trustStoreSnapshot answers with the snapshot and its ETag, or with 304
// and no body when If-None-Match names the current ETag: a gateway polling
// an unchanged store transfers nothing. With ?wait=D (a duration up to
// MaxSnapshotWait) and an If-None-Match that names the current ETag, it is
// a long poll: the answer waits until the snapshot changes (a revocation
// changes it when the CA's new CRL is published) and then carries the new
// snapshot, or is 304 after D. With ?have= (apiv1.HeldCRLs), the CRLs of
// the CAs named there come as delta CRLs from the ones held, or are said
// unchanged, when the digests held match; the ETag does not depend on
// have. A malformed have is a 400 that says which entry and why.
func trustStoreSnapshot(r *request) (*result, error) {
	svc, err := r.trustStores()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	wait, err := snapshotWait(q.Get("wait"))
	if err != nil {
		return nil, err
	}
	held, err := apiv1.ParseHeldCRLs(q.Get("have"))
	if err != nil {
		return nil, fault.New(fault.Invalid, "%v", err)
	}
	name := r.PathValue("name")
	inm := r.Header.Get("If-None-Match")
	h := r.w.Header()
	h.Set("Cache-Control", "no-cache")
	if inm != "" {
		// The ETag alone first: an unchanged snapshot costs no delta.
		snap, err := svc.Snapshot(r.Context(), name)
		if err != nil {
			return nil, err
		}
		if wait > 0 && etagMatches(inm, snap.ETag) {
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			r.h.watch.wait(ctx, name, snap.ETag)
			cancel()
			if r.Context().Err() != nil {
				// The client went away: nobody reads the answer.
				return &result{status: http.StatusNotModified, raw: []byte{}}, nil
			}
			if snap, err = svc.Snapshot(r.Context(), name); err != nil {
				return nil, err
			}
		}
		if etagMatches(inm, snap.ETag) {
			h.Set("ETag", snap.ETag)
			return &result{status: http.StatusNotModified, raw: []byte{}}, nil
		}
	}
	snap, err := svc.SnapshotSince(r.Context(), name, held)
	if err != nil {
		return nil, err
	}
	h.Set("ETag", snap.ETag)
	return ok(snap)
}

// snapshotWait parses the wait parameter of a snapshot request: empty
// means no wait.
func snapshotWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxSnapshotWait {
		return 0, fault.New(fault.Invalid, "wait=%q: want a duration from 0s to %s, such as 30s", s, MaxSnapshotWait)
	}
	return d, nil
}

// etagMatches reports whether an If-None-Match header names etag, with the
// weak comparison RFC 9110 §13.1.2 prescribes for it.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || (t != "" && t == strings.TrimPrefix(etag, "W/")) {
			return true
		}
	}
	return false
}
