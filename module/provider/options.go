package provider

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Options are the options every provider block takes, whatever its adapter. Adapters
// embed it in their module struct, so that a provider's JSON is one flat object:
//
//	{"adapter": "digicert", "base_url": "...", "timeout": "5s", "api_key": "{env.KEY}"}
//
// The host reads these options; the adapter reads only its own.
type Options struct {
	// The vendor's origin: scheme, host, optional port and optional path prefix (for an
	// intermediate proxy). The adapter appends the vendor's documented paths. Defaults to the
	// vendor's production origin where it has one.
	BaseURL string `json:"base_url,omitempty"`

	// A regular expression that every ID this provider owns matches, in full (it is anchored
	// at both ends). Defaults to the vendor's own ID format.
	IDPattern string `json:"id_pattern,omitempty"`

	// How long one operation (all its HTTP calls and retries together) may take. Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// The circuit breaker in front of this provider.
	Breaker *BreakerConfig `json:"breaker,omitempty"`

	// How many times a failed call that is safe to repeat is sent again. Default 2; set 0 to
	// never repeat (a JSON null or absent field means the default).
	Retries *int `json:"retries,omitempty"`

	// The most bytes read from one answer of the provider. Default 1 MiB.
	MaxResponse int64 `json:"max_response,omitempty"`

	// The most connections open to this provider at once. Default 64.
	MaxConnections int `json:"max_connections,omitempty"`

	// The most calls that a batch (POST /credentials/status) makes to this provider at once,
	// its probes included, so that a batch cannot trip the vendor's rate limit or this
	// provider's breaker by itself. Default 8.
	MaxConcurrent int `json:"max_concurrent,omitempty"`

	// The most calls the gateway makes to this provider per unit of time, all of them
	// together (reads, probes, writes, a batch's items): "N/s", "N/m" or "N/h", a token
	// bucket. A single request waits for its turn at most a second, else answers 429
	// rate-limited; a batch's calls wait their turn. Default: no limit.
	Rate string `json:"rate,omitempty"`

	// How many calls may go at once above the rate: the bucket's size. Default: the rate per
	// second, at least 1.
	Burst int `json:"burst,omitempty"`

	// The longest vendor Retry-After the gateway waits for (a batch pauses the provider's
	// calls) or passes on to a client. A longer one is cut to it, and a batch does not wait
	// for it: the provider's items fail with 429. Default 60s.
	MaxRetryAfter caddy.Duration `json:"max_retry_after,omitempty"`

	// A PEM file of CA certificates that the provider's TLS certificate must chain to, instead
	// of the system's roots. Verification is never turned off.
	TLSCAFile string `json:"tls_ca_file,omitempty"`

	// Reads is "on" (the default, also when empty) or "off": for a vendor account whose read
	// endpoint is missing or forbidden. With reads off the provider is never probed, a change
	// sends the vendor's documented write alone (Change.WriteOnly), and GET and dry runs
	// answer 501 reads-disabled.
	Reads string `json:"reads,omitempty"`
}

// ReadsOff reports whether the options say "reads off", or an error for a value other than
// on, off or empty.
func (o *Options) ReadsOff() (bool, error) {
	switch o.Reads {
	case "", "on":
		return false, nil
	case "off":
		return true, nil
	}
	return false, fmt.Errorf("reads must be on or off, not %q", o.Reads)
}

// ProviderOptions makes every struct that embeds Options implement the Adapter method of
// the same name: the host reads the options through it.
func (o *Options) ProviderOptions() *Options { return o }

// BreakerConfig configures a provider's circuit breaker.
type BreakerConfig struct {
	// Consecutive provider failures that open the breaker: it opens on the Nth. Default 5.
	Failures int `json:"failures,omitempty"`
	// How long the breaker stays open before it lets trial requests through. Default 30s.
	OpenFor caddy.Duration `json:"open_for,omitempty"`
	// How many trial requests pass while half-open; that many successes close it. Default 1.
	HalfOpenRequests int `json:"half_open_requests,omitempty"`
}

// ParseProviderBlock parses a provider's Caddyfile segment. Adapters call it from their
// UnmarshalCaddyfile with the dispenser they were given:
//
//	provider <name> <adapter> {
//		base_url        <url>
//		id_pattern      <regexp>
//		timeout         <duration>
//		retries         <n>
//		max_response    <size>
//		max_connections <n>
//		max_concurrent  <n>
//		rate            <n>/s|m|h
//		burst           <n>
//		max_retry_after <duration>
//		tls_ca_file     <path>
//		reads           on|off
//		breaker {
//			failures           <n>
//			open_for           <duration>
//			half_open_requests <n>
//		}
//		... the adapter's own options ...
//	}
//
// It handles the options above and passes every other one to own, positioned on the option's
// name. own returns an error for an option it does not know. Each option may appear once.
func (o *Options) ParseProviderBlock(d *caddyfile.Dispenser, own func(d *caddyfile.Dispenser) error) error {
	d.Next() // "provider"
	if !d.NextArg() || !d.NextArg() {
		return d.ArgErr() // name and adapter were checked by the handler's parser
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "base_url":
			err = ParseString(d, &o.BaseURL)
		case "id_pattern":
			err = ParseString(d, &o.IDPattern)
		case "timeout":
			err = ParseDuration(d, &o.Timeout)
		case "retries":
			var n int
			if err = ParseInt(d, &n); err == nil {
				o.Retries = &n
			}
		case "max_response":
			err = ParseSize(d, &o.MaxResponse)
		case "max_connections":
			err = ParseInt(d, &o.MaxConnections)
		case "max_concurrent":
			err = ParseInt(d, &o.MaxConcurrent)
		case "rate":
			err = ParseString(d, &o.Rate)
		case "burst":
			err = ParseInt(d, &o.Burst)
		case "max_retry_after":
			err = ParseDuration(d, &o.MaxRetryAfter)
		case "tls_ca_file":
			err = ParseString(d, &o.TLSCAFile)
		case "reads":
			if err = ParseString(d, &o.Reads); err == nil {
				_, err = o.ReadsOff()
			}
		case "breaker":
			err = o.parseBreaker(d)
		default:
			err = own(d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *Options) parseBreaker(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	o.Breaker = new(BreakerConfig)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate breaker option %q", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "failures":
			err = ParseInt(d, &o.Breaker.Failures)
		case "open_for":
			err = ParseDuration(d, &o.Breaker.OpenFor)
		case "half_open_requests":
			err = ParseInt(d, &o.Breaker.HalfOpenRequests)
		default:
			err = d.Errf("unknown breaker option %q%s", opt, DidYouMean(opt, BreakerOptionNames, "breaker takes"))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ParseString reads the one argument of the current option into dst. Adapters use it, and
// the other Parse functions, for their own options.
func ParseString(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	if !d.NextArg() {
		return d.Errf("%s: missing value", opt)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: takes one value", opt)
	}
	return nil
}

// ParseDuration reads the one duration argument of the current option into dst.
func ParseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := ParseString(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("bad duration %q: %v", s, err)
	}
	*dst = caddy.Duration(v)
	return nil
}

// ParseInt reads the one integer argument of the current option into dst.
func ParseInt(d *caddyfile.Dispenser, dst *int) error {
	var s string
	if err := ParseString(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("bad number %q", s)
	}
	*dst = v
	return nil
}

// ParseSize reads the one size argument (1MiB, 64KB, 4096) of the current option into dst.
func ParseSize(d *caddyfile.Dispenser, dst *int64) error {
	var s string
	if err := ParseString(d, &s); err != nil {
		return err
	}
	v, err := parseBytes(s)
	if err != nil {
		return d.Errf("bad size %q: %v", s, err)
	}
	*dst = v
	return nil
}

// Vendor describes what an adapter's vendor gives every provider of that adapter.
type Vendor struct {
	// BaseURL is the vendor's production origin, or empty when base_url is required.
	BaseURL string
	// IDPattern is the vendor's ID format, the default id_pattern.
	IDPattern string
	// Capabilities says which statuses the vendor can express.
	Capabilities Capabilities
}

// ResolveSecret replaces the placeholders ({env.NAME}, {file./path}) of a secret option's
// value at Provision time. An unset variable, an unreadable file, an empty result or a stray
// brace fails with a message that names the option and the variable or file, never the value.
func ResolveSecret(repl *caddy.Replacer, option, value string) (string, error) {
	if value == "" {
		return "", fmt.Errorf("%s is required", option)
	}
	out, err := repl.ReplaceOrErr(value, true, true)
	if err != nil {
		return "", fmt.Errorf("%s: %s", option, secretProblem(repl, value))
	}
	if out == "" {
		return "", fmt.Errorf("%s is empty", option)
	}
	if strings.ContainsAny(out, "{}") {
		return "", fmt.Errorf("%s: holds a stray brace; is a placeholder mistyped?", option)
	}
	for i := 0; i < len(out); i++ {
		if c := out[i]; c < 0x20 || c == 0x7f {
			// No HTTP request can carry it in a header: every call would fail.
			return "", fmt.Errorf("%s: holds a control character (byte %d)", option, i)
		}
	}
	return out, nil
}
