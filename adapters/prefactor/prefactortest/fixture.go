// Package prefactortest is the Prefactor adapter's test kit: a simulator of the Prefactor
// platform API's API-token endpoints (with the faults of providertest.Server), its demo data
// for `make run`, and the fixture that lets the shared tests drive the adapter (registered
// with providertest in init; tests/vendors imports this package).
package prefactortest

import (
	"fmt"
	"net/http"

	"github.com/credgate/credgate/module/provider/providertest"
)

// The fixture's data: the bearer token FixtureToken of the account FixtureAccount, which
// holds the API token FixtureID.
const (
	FixtureToken   = "pf-token"
	FixtureAccount = "013xrzp12g3nqk8ngskn1wtxgka5b0nf"
	FixtureID      = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm"
)

func init() {
	providertest.Register(providertest.Fixture{
		Name:     "prefactor",
		DemoPort: 9103,
		Start: func(addr string) *providertest.Sim {
			p := New(addr)
			p.AddToken(FixtureToken, FixtureAccount)
			add := func(id string) { p.AddAPIToken(id, FixtureAccount, "", "active") }
			add(FixtureID)
			return &providertest.Sim{
				Server: p.Server,
				Add:    add,
				Active: func(id string) bool {
					t, ok := p.APIToken(id)
					return ok && t.Status == "active"
				},
				Secrets: func() []string { return []string{FixtureToken} },
				Vendor:  p,
			}
		},
		StartDemo: func(addr string) *providertest.Server {
			p := New(addr)
			p.SeedDemo()
			return p.Server
		},
		Block:       "token {env.PREFACTOR_TOKEN}",
		Env:         map[string]string{"PREFACTOR_TOKEN": FixtureToken},
		ID:          FixtureID,
		UnknownID:   "013xrzp12g3nqk8n0000000000000000",
		WriteMethod: http.MethodPost,
		BulkID:      func(n int) string { return fmt.Sprintf("01bench%025d", n) },
	})
}
