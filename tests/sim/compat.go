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

	DigiCert           = digicerttest.DigiCert
	DCAPIKey           = digicerttest.DCAPIKey
	Palisade           = palisadetest.Palisade
	PalisadeCredential = palisadetest.PalisadeCredential
	Prefactor          = prefactortest.Prefactor
	PrefactorAPIToken  = prefactortest.PrefactorAPIToken
	ZStack             = zstacktest.ZStack
	ZStackCredential   = zstacktest.ZStackCredential
)

const (
	PrefactorDemoBearer  = prefactortest.PrefactorDemoBearer
	PrefactorDemoAccount = prefactortest.PrefactorDemoAccount
	PrefactorDemoActive  = prefactortest.PrefactorDemoActive
	PrefactorDemoRevoked = prefactortest.PrefactorDemoRevoked
	ZStackDemoToken      = zstacktest.ZStackDemoToken
	ZStackDemoID         = zstacktest.ZStackDemoID
	ZStackDemoValue      = zstacktest.ZStackDemoValue
)

var (
	NewDigiCert  = digicerttest.NewDigiCert
	NewPalisade  = palisadetest.NewPalisade
	NewPrefactor = prefactortest.NewPrefactor
	NewZStack    = zstacktest.NewZStack
)
