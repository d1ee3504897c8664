// Package palisadetest is the Palisade adapter's test kit: a simulator of the Palisade API
// 2.0 credential endpoints and its OAuth token endpoint (with the faults of
// providertest.Server), its demo data for `make run`, and the fixture that lets the shared
// tests drive the adapter (registered with providertest in init; tests/vendors imports this
// package).
package palisadetest

import (
	"fmt"
	"net/http"

	"github.com/credgate/credgate/module/provider/providertest"
)

// The fixture's data: the organization FixtureOrg, whose OAuth client is FixtureClientID /
// FixtureClientSecret, holds the credential FixtureID (enabled, no approval needed).
const (
	FixtureOrg          = "org-eu"
	FixtureClientID     = "cid-eu"
	FixtureClientSecret = "csecret-eu"
	FixtureID           = "ce4918bf-a199-4ce2-85a3-d0d296855384"
)

func init() {
	providertest.Register(providertest.Fixture{
		Name:     "palisade",
		DemoPort: 9101,
		Start: func(addr string) *providertest.Sim {
			p := New(addr)
			p.AddClient(FixtureOrg, FixtureClientID, FixtureClientSecret)
			add := func(id string) { p.AddCredential(FixtureOrg, id, "Treasury", "WALLETS", "ENABLED", true, false) }
			add(FixtureID)
			return &providertest.Sim{
				Server: p.Server,
				Add:    add,
				Active: func(id string) bool {
					c, ok := p.Credential(id)
					return ok && c.Active
				},
				Secrets: func() []string {
					secrets := append([]string{FixtureClientSecret}, p.IssuedTokens()...)
					if c, ok := p.Credential(FixtureID); ok {
						secrets = append(secrets, c.ClientSecret)
					}
					return secrets
				},
				Vendor: p,
			}
		},
		StartDemo: func(addr string) *providertest.Server {
			p := New(addr)
			p.SeedDemo()
			return p.Server
		},
		Block:       "client_id {env.PALISADE_CLIENT_ID}\nclient_secret {env.PALISADE_CLIENT_SECRET}",
		Env:         map[string]string{"PALISADE_CLIENT_ID": FixtureClientID, "PALISADE_CLIENT_SECRET": FixtureClientSecret},
		ID:          FixtureID,
		UnknownID:   "00000000-0000-4000-8000-000000000000",
		WriteMethod: http.MethodPut,
		BulkID:      func(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xbe0c0000+n, n) },
	})
}
