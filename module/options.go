package module

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/credgate/credgate/module/provider"
)

// Defaults of the options every provider takes.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponse      = 1 << 20
	DefaultRetries          = 2
	DefaultFailures         = 5
	DefaultOpenFor          = 30 * time.Second
	DefaultHalfOpenRequests = 1
	DefaultMaxConnections   = 64
	DefaultMaxConcurrent    = 8
)

// ProviderOptions are the options every provider block takes, whatever its adapter. Adapters
// embed it in their module struct, so that a provider's JSON is one flat object:
//
//	{"adapter": "digicert", "base_url": "...", "timeout": "5s", "api_key": "{env.KEY}"}
//
// The host reads these options; the adapter reads only its own.
type ProviderOptions struct {
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

	// A PEM file of CA certificates that the provider's TLS certificate must chain to, instead
	// of the system's roots. Verification is never turned off.
	TLSCAFile string `json:"tls_ca_file,omitempty"`
}

// providerOptions makes every struct that embeds ProviderOptions implement Adapter's method of
// the same name.
func (o *ProviderOptions) providerOptions() *ProviderOptions { return o }

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
//		tls_ca_file     <path>
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
func (o *ProviderOptions) ParseProviderBlock(d *caddyfile.Dispenser, own func(d *caddyfile.Dispenser) error) error {
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
			err = parseString(d, &o.BaseURL)
		case "id_pattern":
			err = parseString(d, &o.IDPattern)
		case "timeout":
			err = parseDuration(d, &o.Timeout)
		case "retries":
			var n int
			if err = parseInt(d, &n); err == nil {
				o.Retries = &n
			}
		case "max_response":
			err = parseSize(d, &o.MaxResponse)
		case "max_connections":
			err = parseInt(d, &o.MaxConnections)
		case "max_concurrent":
			err = parseInt(d, &o.MaxConcurrent)
		case "tls_ca_file":
			err = parseString(d, &o.TLSCAFile)
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

func (o *ProviderOptions) parseBreaker(d *caddyfile.Dispenser) error {
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
			err = parseInt(d, &o.Breaker.Failures)
		case "open_for":
			err = parseDuration(d, &o.Breaker.OpenFor)
		case "half_open_requests":
			err = parseInt(d, &o.Breaker.HalfOpenRequests)
		default:
			err = d.Errf("unknown breaker option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ParseString reads the one argument of the current option into dst. Adapters use it for
// their own options.
func ParseString(d *caddyfile.Dispenser, dst *string) error { return parseString(d, dst) }

// ParseDuration reads the one duration argument of the current option into dst.
func ParseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return parseDuration(d, dst)
}

func parseString(d *caddyfile.Dispenser, dst *string) error {
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

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	if err := parseString(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("bad duration %q: %v", s, err)
	}
	*dst = caddy.Duration(v)
	return nil
}

func parseInt(d *caddyfile.Dispenser, dst *int) error {
	var s string
	if err := parseString(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("bad number %q", s)
	}
	*dst = v
	return nil
}

func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	var s string
	if err := parseString(d, &s); err != nil {
		return err
	}
	v, err := parseBytes(s)
	if err != nil {
		return d.Errf("bad size %q: %v", s, err)
	}
	*dst = v
	return nil
}

// settings is what the host derives from a provider's options in Provision.
type settings struct {
	baseURL        string
	pattern        *regexp.Regexp
	timeout        time.Duration
	retries        int
	maxResponse    int64
	maxConnections int
	maxConcurrent  int
	failures       int
	openFor        time.Duration
	halfOpen       int
}

// resolve applies the defaults (the vendor's where it has them) and checks every value.
func (o *ProviderOptions) resolve(v Vendor) (settings, error) {
	s := settings{
		baseURL:        o.BaseURL,
		timeout:        time.Duration(o.Timeout),
		retries:        DefaultRetries,
		maxResponse:    o.MaxResponse,
		maxConnections: o.MaxConnections,
		maxConcurrent:  o.MaxConcurrent,
		failures:       DefaultFailures,
		openFor:        DefaultOpenFor,
		halfOpen:       DefaultHalfOpenRequests,
	}
	if s.baseURL == "" {
		s.baseURL = v.BaseURL
	}
	if s.baseURL == "" {
		return s, fmt.Errorf("base_url is required: this vendor has no public origin")
	}
	u, err := url.Parse(s.baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return s, fmt.Errorf("base_url %q: want an origin such as https://host[:port][/prefix]", s.baseURL)
	}
	s.baseURL = strings.TrimRight(s.baseURL, "/")

	pattern := o.IDPattern
	if pattern == "" {
		pattern = v.IDPattern
	}
	if s.pattern, err = regexp.Compile(`^(?:` + pattern + `)$`); err != nil {
		return s, fmt.Errorf("id_pattern: %v", err)
	}

	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.timeout < 0 {
		return s, fmt.Errorf("timeout must be positive")
	}
	if o.Retries != nil {
		s.retries = *o.Retries
	}
	if s.retries < 0 || s.retries > 10 {
		return s, fmt.Errorf("retries must be between 0 and 10")
	}
	if s.maxResponse == 0 {
		s.maxResponse = DefaultMaxResponse
	}
	if s.maxResponse < 0 {
		return s, fmt.Errorf("max_response must be positive")
	}
	if s.maxConnections == 0 {
		s.maxConnections = DefaultMaxConnections
	}
	if s.maxConnections < 0 {
		return s, fmt.Errorf("max_connections must be positive")
	}
	if s.maxConcurrent == 0 {
		s.maxConcurrent = DefaultMaxConcurrent
	}
	if s.maxConcurrent < 0 {
		return s, fmt.Errorf("max_concurrent must be positive")
	}
	if b := o.Breaker; b != nil {
		if b.Failures != 0 {
			s.failures = b.Failures
		}
		if b.OpenFor != 0 {
			s.openFor = time.Duration(b.OpenFor)
		}
		if b.HalfOpenRequests != 0 {
			s.halfOpen = b.HalfOpenRequests
		}
	}
	if s.failures < 1 || s.openFor <= 0 || s.halfOpen < 1 {
		return s, fmt.Errorf("breaker: failures, open_for and half_open_requests must be positive")
	}
	return s, nil
}

// Vendor describes what an adapter's vendor gives every provider of that adapter.
type Vendor struct {
	// BaseURL is the vendor's production origin, or empty when base_url is required.
	BaseURL string
	// IDPattern is the vendor's ID format, the default id_pattern.
	IDPattern string
	// Capabilities says which statuses the vendor can express.
	Capabilities provider.Capabilities
}

// ResolveSecret replaces the placeholders ({env.NAME}, {file./path}) of a secret option's
// value at Provision time. An unset variable, an unreadable file, an empty result or a stray
// brace fails with a message that names the option, never the value.
func ResolveSecret(repl *caddy.Replacer, option, value string) (string, error) {
	if value == "" {
		return "", fmt.Errorf("%s is required", option)
	}
	out, err := repl.ReplaceOrErr(value, true, true)
	if err != nil {
		return "", fmt.Errorf("%s: a placeholder is unset, empty or unknown (use {env.NAME} or {file./path})", option)
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
