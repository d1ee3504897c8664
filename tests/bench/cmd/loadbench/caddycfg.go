package main

import (
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// obj is a JSON object of a Caddy config.
type obj = map[string]any

// caddyConfig is the whole config: admin off (no autosave), logs at ERROR, one HTTP server
// per address, plain HTTP on loopback.
func caddyConfig(servers obj) ([]byte, error) {
	return json.Marshal(obj{
		"admin":   obj{"disabled": true, "config": obj{"persist": false}},
		"logging": obj{"logs": obj{"default": obj{"level": "ERROR"}}},
		"apps":    obj{"http": obj{"servers": servers}},
	})
}

// server is a plain-HTTP server on addr running handlers in order.
func server(addr string, handlers ...obj) obj {
	return obj{
		"listen":          []string{addr},
		"automatic_https": obj{"disable": true},
		"routes":          []obj{{"handle": handlers}},
	}
}

// reverseProxy is Caddy's stock reverse_proxy: nothing but the upstream.
func reverseProxy(upstream string) obj {
	return obj{"handler": "reverse_proxy", "upstreams": []obj{{"dial": upstream}}}
}

// credentialStatus is the gateway handler with these providers, everything else default.
func credentialStatus(providers obj) obj {
	return obj{"handler": "credential_status", "providers": providers}
}

// notFound answers what the gateway passes on (any other path).
func notFound() obj {
	return obj{"handler": "static_response", "status_code": 404}
}

// digicertProvider is a digicert provider on a stub, with a literal partner key, and extra
// options (id_pattern, breaker, retries) merged in.
func digicertProvider(s *stub, extra obj) obj {
	p := obj{"adapter": "digicert", "base_url": s.url, "api_key": stubAPIKey}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// freePorts returns n distinct free loopback addresses (held open together while chosen).
func freePorts(n int) ([]string, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitListening waits until every address accepts connections.
func waitListening(addrs []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("nothing listens on %s: %v", a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}
