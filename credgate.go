// Package credgate plugs every Caddy module of the project into Caddy: the
// http.handlers.credential_status handler and its provider adapters. Build it with xcaddy:
//
//	xcaddy build --with github.com/credgate/credgate
package credgate

import (
	// The host handler.
	_ "github.com/credgate/credgate/module"

	// The adapters.
	_ "github.com/credgate/credgate/adapters/digicert"
)
