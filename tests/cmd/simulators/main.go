// Command simulators serves the simulator of every vendor of tests/vendors on fixed loopback
// ports, seeded with the demo data that caddyfile-examples/local.Caddyfile expects, until
// SIGINT or SIGTERM. `make run` starts it beside the gateway.
//
//	go run ./tests/cmd/simulators [-palisade 127.0.0.1:9101] [-zstack 127.0.0.1:9102]
//		[-prefactor 127.0.0.1:9103] [-digicert 127.0.0.1:9104]
//
// There is one flag per vendor, named after its adapter, whose default port is the
// fixture's DemoPort. Each simulator also serves its switches: POST a fault as JSON to
// /_sim/fault (for example {"status": 503, "times": 2} or {"hang": "30s"}; see
// providertest.Fault), DELETE /_sim/fault to clear it, and GET /_sim/requests for the
// requests it received.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/credgate/credgate/module/provider/providertest"
	_ "github.com/credgate/credgate/tests/vendors"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("simulators: ")
	// In the order of their ports, as `make run` waits for them.
	fixtures := slices.SortedFunc(slices.Values(providertest.Fixtures()), func(a, b providertest.Fixture) int {
		return cmp.Compare(a.DemoPort, b.DemoPort)
	})
	addrs := make([]*string, len(fixtures))
	for i, f := range fixtures {
		addrs[i] = flag.String(f.Name, fmt.Sprintf("127.0.0.1:%d", f.DemoPort), "the `address` of the "+f.Name+" simulator")
	}
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}

	var servers []*providertest.Server
	stopAll := func() {
		for _, s := range servers {
			s.CloseClientConnections() // ends requests held by a "hang" fault
			s.Close()
		}
	}
	for i, f := range fixtures {
		srv, err := start(f, *addrs[i])
		if err != nil {
			stopAll()
			log.Fatal(err)
		}
		servers = append(servers, srv)
		log.Printf("%-9s %s  (faults: POST/DELETE %[2]s/_sim/fault, log: GET %[2]s/_sim/requests)", f.Name, srv.URL)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	log.Print("serving until SIGINT or SIGTERM")
	log.Printf("%v: stopping", <-sig)
	stopAll()
}

// start starts one vendor's demo simulator, turning the panic of a failed listen into an
// error.
func start(f providertest.Fixture, addr string) (srv *providertest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", f.Name, r)
		}
	}()
	return f.StartDemo(addr), nil
}
