package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestKindOf(t *testing.T) {
	base := errors.New("disk on fire")
	tests := []struct {
		name string
		err  error
		want Kind
		msg  string
	}{
		{"ok/plain error is internal", base, Internal, "disk on fire"},
		{"ok/new", New(Invalid, "bad %s", "csr"), Invalid, "bad csr"},
		{"ok/wrapped by fmt", fmt.Errorf("issue: %w", New(NotFound, "no ca")), NotFound, "issue: no ca"},
		{"ok/wrap keeps cause", Wrap(Unavailable, base, "store"), Unavailable, "store: disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf = %v, want %v", got, tt.want)
			}
			if tt.err.Error() != tt.msg {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.msg)
			}
		})
	}
	if Wrap(Invalid, nil, "x") != nil {
		t.Error("Wrap(nil) != nil")
	}
	if !errors.Is(Wrap(Unavailable, base, "x"), base) {
		t.Error("Wrap does not unwrap to its cause")
	}
	if Kind(99).String() != "internal" || Conflict.String() != "conflict" {
		t.Error("String mapping wrong")
	}
}

func TestCredentialOf(t *testing.T) {
	refusal := New(Unauthenticated, "the bearer token was revoked")
	err := fmt.Errorf("authenticate: %w", &Credential{Err: refusal, Actor: "token:3f2a", About: "of principal ci"})
	c := CredentialOf(err)
	if c == nil || c.Actor != "token:3f2a" || c.About != "of principal ci" {
		t.Fatalf("CredentialOf = %+v", c)
	}
	if KindOf(err) != Unauthenticated || err.Error() != "authenticate: the bearer token was revoked" {
		t.Errorf("kind %v, text %q: the credential must not change either", KindOf(err), err.Error())
	}
	if CredentialOf(refusal) != nil || CredentialOf(nil) != nil {
		t.Error("an error without a credential names one")
	}
}
