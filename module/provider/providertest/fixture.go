package providertest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// A Fixture is how the vendor-blind tests, the simulators command (`make run`) and the load
// bench drive one adapter without naming it. Each vendor's test package
// (adapters/<vendor>/<vendor>test) builds one beside its simulator and registers it in its
// init:
//
//	func init() { providertest.Register(fixture) }
//
// and tests/vendors blank-imports that package. This is all a new vendor implements for the
// shared tests; every field is required.
type Fixture struct {
	// Name is the adapter's module name in http.credential_status.providers, the word after
	// the provider's name in a Caddyfile provider block ("digicert").
	Name string
	// DemoPort is the loopback port of the simulator under `make run`: the default of the
	// simulators command's -<Name> flag, and the port of the vendor's base_url in
	// caddyfile-examples/local.Caddyfile.
	DemoPort int

	// Start starts the simulator on addr (a free loopback port when empty), seeded for tests:
	// it holds ID, active, and accepts the secrets of Env. It panics when addr is taken.
	Start func(addr string) *Sim
	// StartDemo starts the simulator on addr seeded with the demo data that
	// caddyfile-examples/local.Caddyfile and the README expect.
	StartDemo func(addr string) *Server

	// Block is the body of a Caddyfile provider block that configures the adapter against
	// Start's simulator, base_url left out (the caller adds it): one subdirective per line,
	// secrets as {env.X} placeholders, e.g. "api_key {env.DC_PARENT_KEY}".
	Block string
	// Env holds the variables that Block's placeholders read, with the values Start's
	// simulator accepts. Names start with the vendor's name or its abbreviation, so that
	// the fixtures can share one environment.
	Env map[string]string

	// ID is a credential that Start's simulator holds, active, and the account Block
	// configures owns. UnknownID has the vendor's ID format (the adapter's default
	// id_pattern takes it) but the simulator does not hold it: reading it is a 404.
	ID, UnknownID string
	// WriteMethod is the HTTP method of the vendor's change call (PUT, POST): faults that
	// should hit only the write set it as Fault.Method, and tests count writes by it.
	WriteMethod string
	// BulkID returns the n-th (n >= 0) of as many IDs as a load test wants: the vendor's
	// format, none of them held until Sim.Add, none taken by another vendor's default
	// id_pattern, so that an item has one candidate provider.
	BulkID func(n int) string
}

// Sim is a simulator a Fixture started for tests.
type Sim struct {
	*Server
	// Add seeds the credential id, active, owned by the account that the fixture's Block
	// configures; an id already held is put back to active (tests restore ID with it).
	Add func(id string)
	// Active reports whether the simulator holds id and it is active in the vendor's terms
	// (the answer the gateway would give as "active").
	Active func(id string) bool
	// Secrets returns every secret the simulator knows of, which the gateway must never show
	// in an answer or a log line: the Env values, and those the simulator hands out (issued
	// tokens, a credential's stored value or client secret).
	Secrets func() []string
	// Vendor is the vendor's own simulator (*digicerttest.Simulator, ...), for the tests
	// that know the vendor.
	Vendor any
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]Fixture{}
)

// Register adds a vendor's fixture. It panics when the fixture lacks a field or its Name is
// already registered: both are programming errors found by the first test run.
func Register(f Fixture) {
	if err := f.check(); err != nil {
		panic("providertest.Register: " + err.Error())
	}
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if _, dup := fixtures[f.Name]; dup {
		panic("providertest.Register: fixture " + f.Name + " registered twice")
	}
	fixtures[f.Name] = f
}

// Fixtures returns the registered fixtures, sorted by Name.
func Fixtures() []Fixture {
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	out := make([]Fixture, 0, len(fixtures))
	for _, f := range fixtures {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Fixture) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup returns the registered fixture of an adapter name.
func Lookup(name string) (Fixture, bool) {
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	f, ok := fixtures[name]
	return f, ok
}

// check reports the first missing field of a fixture.
func (f Fixture) check() error {
	switch {
	case f.Name == "":
		return fmt.Errorf("a fixture without a Name")
	case f.DemoPort <= 0 || f.DemoPort > 65535:
		return fmt.Errorf("fixture %s: DemoPort %d", f.Name, f.DemoPort)
	case f.Start == nil || f.StartDemo == nil || f.BulkID == nil:
		return fmt.Errorf("fixture %s: Start, StartDemo and BulkID are required", f.Name)
	case f.Block == "" || f.ID == "" || f.UnknownID == "" || f.WriteMethod == "":
		return fmt.Errorf("fixture %s: Block, ID, UnknownID and WriteMethod are required", f.Name)
	}
	return nil
}
