// Command simulators serves the four vendor simulators of tests/sim on fixed loopback ports,
// seeded with the demo data that caddyfile-examples/local.Caddyfile expects, until SIGINT or
// SIGTERM. `make run` starts it beside the gateway.
//
//	go run ./tests/cmd/simulators [-palisade 127.0.0.1:9101] [-zstack 127.0.0.1:9102]
//		[-prefactor 127.0.0.1:9103] [-digicert 127.0.0.1:9104]
//
// Each simulator also serves its switches: POST a fault as JSON to /_sim/fault (for example
// {"status": 503, "times": 2} or {"hang": "30s"}; see sim.Fault), DELETE /_sim/fault to
// clear it, and GET /_sim/requests for the requests it received.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/credgate/credgate/tests/sim"
)

// A starter starts one vendor's simulator, seeded with its demo data, on addr.
type starter struct {
	vendor string
	addr   string // the default address
	start  func(addr string) *sim.Server
}

// starters are the simulators this program serves, in the order of their ports.
var starters = []starter{
	{"palisade", "127.0.0.1:9101", func(addr string) *sim.Server {
		p := sim.NewPalisade(addr)
		p.SeedDemo()
		return p.Server
	}},
	{"zstack", "127.0.0.1:9102", func(addr string) *sim.Server {
		z := sim.NewZStack(addr)
		z.SeedDemo()
		return z.Server
	}},
	{"prefactor", "127.0.0.1:9103", func(addr string) *sim.Server {
		p := sim.NewPrefactor(addr)
		p.SeedDemo()
		return p.Server
	}},
	{"digicert", "127.0.0.1:9104", func(addr string) *sim.Server {
		d := sim.NewDigiCert(addr)
		d.SeedDemo()
		return d.Server
	}},
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("simulators: ")
	addrs := make([]*string, len(starters))
	for i, s := range starters {
		addrs[i] = flag.String(s.vendor, s.addr, "the `address` of the "+s.vendor+" simulator")
	}
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments %q", flag.Args())
	}

	var servers []*sim.Server
	stopAll := func() {
		for _, s := range servers {
			s.CloseClientConnections() // ends requests held by a "hang" fault
			s.Close()
		}
	}
	for i, s := range starters {
		srv, err := start(s, *addrs[i])
		if err != nil {
			stopAll()
			log.Fatal(err)
		}
		servers = append(servers, srv)
		log.Printf("%-9s %s  (faults: POST/DELETE %[2]s/_sim/fault, log: GET %[2]s/_sim/requests)", s.vendor, srv.URL)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	log.Print("serving until SIGINT or SIGTERM")
	log.Printf("%v: stopping", <-sig)
	stopAll()
}

// start starts one simulator, turning the panic of a failed listen into an error.
func start(s starter, addr string) (srv *sim.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", s.vendor, r)
		}
	}()
	return s.start(addr), nil
}
