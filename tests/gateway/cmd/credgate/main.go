// Command credgate is Caddy with credgate plugged in, built from this repository's go.mod:
// the main package that xcaddy generates (caddycmd.Main and a blank import of the root
// package). Tests that need a gateway in its own process (tests/docs) build it with go build
// instead of xcaddy, so that it runs the very Caddy the tests compile against.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, as xcaddy's generated main imports them.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// Every module of credgate.
	_ "github.com/credgate/credgate"
)

func main() {
	caddycmd.Main()
}
