// Package digicerttest is the DigiCert adapter's test kit: a simulator of the DigiCert
// Partner Subscriptions API's API-key endpoints (with the faults of providertest.Server), its
// demo data for `make run`, and the fixture that lets the shared tests drive the adapter
// (registered with providertest in init; tests/vendors imports this package).
package digicerttest

import (
	"net/http"
	"strconv"

	"github.com/credgate/credgate/module/provider/providertest"
)

// The fixture's account: account 1, whose partner key is FixtureKey, holds FixtureID.
const (
	FixtureAccount = 1
	FixtureKey     = "k-parent"
	FixtureID      = "10001"
)

func init() {
	providertest.Register(providertest.Fixture{
		Name:     "digicert",
		DemoPort: 9104,
		Start: func(addr string) *providertest.Sim {
			d := New(addr)
			d.AddAccount(FixtureAccount, 0, FixtureKey)
			add := func(id string) {
				n, err := strconv.Atoi(id)
				if err != nil {
					panic("digicerttest: API key IDs are integers, not " + strconv.Quote(id))
				}
				d.AddKey(n, FixtureAccount, "build-server", "active")
			}
			add(FixtureID)
			return &providertest.Sim{
				Server: d.Server,
				Add:    add,
				Active: func(id string) bool {
					n, _ := strconv.Atoi(id)
					k, ok := d.Key(n)
					return ok && k.Status == "active"
				},
				Secrets: func() []string { return []string{FixtureKey} },
				Vendor:  d,
			}
		},
		StartDemo: func(addr string) *providertest.Server {
			d := New(addr)
			d.SeedDemo()
			return d.Server
		},
		Block:       "api_key {env.DC_PARENT_KEY}",
		Env:         map[string]string{"DC_PARENT_KEY": FixtureKey},
		ID:          FixtureID,
		UnknownID:   "10999",
		WriteMethod: http.MethodPut,
		BulkID:      func(n int) string { return strconv.Itoa(500_000 + n) },
	})
}
