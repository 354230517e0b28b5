package pki_test

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestProfiles(t *testing.T) {
	want := []string{"server", "client", "server-client", "subordinate-ca"}
	if got := pki.ProfileNames(); !slices.Equal(got, want) {
		t.Fatalf("ProfileNames() = %v, want %v", got, want)
	}
	tests := map[string]struct {
		eku      []x509.ExtKeyUsage
		isCA     bool
		def, max time.Duration
		min      time.Duration
	}{
		"server":         {eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, def: 90 * pki.Day, max: 398 * pki.Day, min: time.Minute},
		"client":         {eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, def: 30 * pki.Day, max: 398 * pki.Day, min: time.Minute},
		"server-client":  {eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, def: 90 * pki.Day, max: 398 * pki.Day, min: time.Minute},
		"subordinate-ca": {isCA: true, def: 5 * pki.Year, max: 10 * pki.Year, min: pki.Day},
	}
	for name, tt := range tests {
		t.Run("ok/"+name, func(t *testing.T) {
			p, err := pki.LookupProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != name || p.Description == "" {
				t.Errorf("profile %q: name %q, description %q", name, p.Name, p.Description)
			}
			if !slices.Equal(p.ExtKeyUsage(), tt.eku) || p.IsCA != tt.isCA {
				t.Errorf("EKU %v CA %v, want %v %v", p.ExtKeyUsage(), p.IsCA, tt.eku, tt.isCA)
			}
			if p.DefaultValidity != tt.def || p.MaxValidity != tt.max || p.MinValidity != tt.min {
				t.Errorf("validity default/max/min = %v/%v/%v, want %v/%v/%v", p.DefaultValidity, p.MaxValidity, p.MinValidity, tt.def, tt.max, tt.min)
			}
			if err := p.CheckValidity(p.DefaultValidity); err != nil {
				t.Errorf("default validity fails its own check: %v", err)
			}
			if p.IsCA && p.MaxPathLen != 0 {
				t.Errorf("subordinate-ca path length = %d, want 0", p.MaxPathLen)
			}
		})
	}
	t.Run("ok/lookup returns a copy", func(t *testing.T) {
		p, _ := pki.LookupProfile("server")
		p.MaxValidity = 100 * pki.Year
		again, _ := pki.LookupProfile("server")
		if again.MaxValidity != 398*pki.Day {
			t.Fatal("changing a looked-up profile changed the built-in one")
		}
	})
	t.Run("fail/unknown", func(t *testing.T) {
		_, err := pki.LookupProfile("email")
		wantErr(t, err, pki.ErrInvalid, `unknown profile "email" (known: server, client, server-client, subordinate-ca)`)
	})
}

func TestCheckValidity(t *testing.T) {
	tests := map[string]struct {
		profile string
		d       time.Duration
		err     string
	}{
		"ok/server minimum":     {profile: "server", d: time.Minute},
		"ok/server maximum":     {profile: "server", d: 398 * pki.Day},
		"ok/ca maximum":         {profile: "subordinate-ca", d: 10 * pki.Year},
		"fail/server too short": {profile: "server", d: 59 * time.Second, err: `pki: validity 59s is below the minimum of 1m0s for profile "server"`},
		"fail/server too long":  {profile: "server", d: 399 * pki.Day, err: `pki: validity 399d exceeds the maximum of 398d for profile "server"`},
		"fail/client too long":  {profile: "client", d: 2 * pki.Year, err: `validity 2y exceeds the maximum of 398d for profile "client"`},
		"fail/ca too long":      {profile: "subordinate-ca", d: 10*pki.Year + time.Hour, err: `validity 3650d1h0m0s exceeds the maximum of 10y for profile "subordinate-ca"`},
		"fail/ca too short":     {profile: "subordinate-ca", d: 12 * time.Hour, err: `validity 12h0m0s is below the minimum of 1d for profile "subordinate-ca"`},
		"fail/zero":             {profile: "server", d: 0, err: "validity 0s is not positive"},
		"fail/negative":         {profile: "client", d: -time.Hour, err: "is not positive"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := pki.LookupProfile(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			wantErr(t, p.CheckValidity(tt.d), pki.ErrInvalid, tt.err)
		})
	}
}
