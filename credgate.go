// Package credgate plugs every Caddy module of the project into Caddy: the
// http.handlers.credential_status handler, its provider adapters, and the `credentials`
// subcommand. Build it with xcaddy:
//
//	xcaddy build --with github.com/credgate/credgate
package credgate

import (
	// The host handler.
	_ "github.com/credgate/credgate/module/credentialstatus"

	// The adapters, one module each in http.credential_status.providers.
	_ "github.com/credgate/credgate/adapters/digicert"
	_ "github.com/credgate/credgate/adapters/palisade"
	_ "github.com/credgate/credgate/adapters/prefactor"
	_ "github.com/credgate/credgate/adapters/zstack"

	// The operators' client: the `credentials` subcommand (docs/cli.md).
	_ "github.com/credgate/credgate/module/credentialscli"
)
