// Package vendors is the one registry of the vendors' test fixtures: it blank-imports the
// test kit of every adapter (adapters/<vendor>/<vendor>test), whose init registers the
// vendor's fixture with providertest. The integration tests, the simulators command and the
// load bench import this package and iterate providertest.Fixtures(), so a new vendor is
// its folder, one line here and one in credgate.go (the binary); TestEveryAdapterHasAFixture
// fails until both lines are there.
package vendors

import (
	_ "github.com/credgate/credgate/adapters/digicert/digicerttest"
	_ "github.com/credgate/credgate/adapters/palisade/palisadetest"
	_ "github.com/credgate/credgate/adapters/prefactor/prefactortest"
	_ "github.com/credgate/credgate/adapters/zstack/zstacktest"
)
