// Package sim is what is left of the vendor simulators' old home: aliases for the adapters'
// own tests (adapters/<vendor>/*_test.go), which still import it. The simulators live in
// adapters/<vendor>/<vendor>test and their base in module/provider/providertest; once those
// tests import them, delete this package.
//
// Deprecated: use providertest and the vendors' <vendor>test packages.
package sim

import (
	"github.com/credgate/credgate/adapters/digicert/digicerttest"
	"github.com/credgate/credgate/adapters/palisade/palisadetest"
	"github.com/credgate/credgate/adapters/prefactor/prefactortest"
	"github.com/credgate/credgate/adapters/zstack/zstacktest"
	"github.com/credgate/credgate/module/provider/providertest"
)

type (
	Fault   = providertest.Fault
	Server  = providertest.Server
	Request = providertest.Request

	DigiCert           = digicerttest.Simulator
	DCAPIKey           = digicerttest.APIKey
	Palisade           = palisadetest.Simulator
	PalisadeCredential = palisadetest.Credential
	Prefactor          = prefactortest.Simulator
	PrefactorAPIToken  = prefactortest.APIToken
	ZStack             = zstacktest.Simulator
	ZStackCredential   = zstacktest.Credential
)

const (
	PrefactorDemoBearer  = prefactortest.DemoBearer
	PrefactorDemoAccount = prefactortest.DemoAccount
	PrefactorDemoActive  = prefactortest.DemoActive
	PrefactorDemoRevoked = prefactortest.DemoRevoked
	ZStackDemoToken      = zstacktest.DemoToken
	ZStackDemoID         = zstacktest.DemoID
	ZStackDemoValue      = zstacktest.DemoValue
)

var (
	NewDigiCert  = digicerttest.New
	NewPalisade  = palisadetest.New
	NewPrefactor = prefactortest.New
	NewZStack    = zstacktest.New
)
