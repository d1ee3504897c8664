// Package zstacktest is the ZStack adapter's test kit: a simulator of the ZStack Cloud
// credentials API (with the faults of providertest.Server), its demo data for `make run`,
// and the fixture that lets the shared tests drive the adapter (registered with
// providertest in init; tests/vendors imports this package).
package zstacktest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/credgate/credgate/module/provider/providertest"
)

// The fixture's data: the bearer token FixtureToken, and FixtureID, whose stored secret is
// FixtureValue, expiring an hour after it was (re)seeded.
const (
	FixtureToken = "zs-token"
	FixtureID    = "cred-0c3e5a47-9b1d-4f2a-8e6c-7d5b3a1f0e92"
	FixtureValue = "zs-stored-secret-value"
)

func init() {
	providertest.Register(providertest.Fixture{
		Name:     "zstack",
		DemoPort: 9102,
		Start: func(addr string) *providertest.Sim {
			z := New(addr)
			z.AddToken(FixtureToken)
			add := func(id string) {
				z.AddCredential(Credential{UUID: id, Name: "prod-db", ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339), Value: FixtureValue})
			}
			add(FixtureID)
			return &providertest.Sim{
				Server: z.Server,
				Add:    add,
				Active: func(id string) bool {
					c, ok := z.Credential(id)
					if !ok {
						return false
					}
					t, err := time.Parse(time.RFC3339, c.ExpiresAt)
					return c.ExpiresAt == "" || (err == nil && t.After(time.Now()))
				},
				Secrets: func() []string { return []string{FixtureToken, FixtureValue} },
				Vendor:  z,
			}
		},
		StartDemo: func(addr string) *providertest.Server {
			z := New(addr)
			z.SeedDemo()
			return z.Server
		},
		Block:       "token {env.ZSTACK_TOKEN}",
		Env:         map[string]string{"ZSTACK_TOKEN": FixtureToken},
		ID:          FixtureID,
		UnknownID:   "cred-00000000-0000-4000-8000-000000000000",
		WriteMethod: http.MethodPut,
		BulkID:      func(n int) string { return fmt.Sprintf("cred-%08x-0000-4000-8000-%012x", 0x5e0c0000+n, n) },
	})
}
