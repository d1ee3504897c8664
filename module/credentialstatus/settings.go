package credentialstatus

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/credgate/credgate/module/provider"
	"golang.org/x/time/rate"
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
	DefaultMaxRetryAfter    = time.Minute
)

// settings is what the host derives from a provider's options in Provision.
type settings struct {
	baseURL        string
	pattern        *regexp.Regexp
	timeout        time.Duration
	retries        int
	maxResponse    int64
	maxConnections int
	maxConcurrent  int
	rate           rate.Limit // calls per second; 0: no limit
	burst          int
	maxRetryAfter  time.Duration
	failures       int
	openFor        time.Duration
	halfOpen       int
	// readsOff: the provider is never read (see reads.go).
	readsOff bool
}

// resolve applies the defaults (the vendor's where it has them) and checks every value.
func resolveSettings(o *provider.Options, v provider.Vendor) (settings, error) {
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

	if s.readsOff, err = o.ReadsOff(); err != nil {
		return s, err
	}

	pattern := o.IDPattern
	if pattern == "" {
		pattern = v.IDPattern
	}
	// The pattern alone first: the error then shows what the user wrote, and a pattern such
	// as `a)|(b` cannot escape the anchoring group below.
	if _, err := regexp.Compile(pattern); err != nil {
		return s, fmt.Errorf("id_pattern %s", patternError(pattern, err))
	}
	if s.pattern, err = regexp.Compile(`^(?:` + pattern + `)$`); err != nil {
		return s, fmt.Errorf("id_pattern %s", patternError(pattern, err))
	}

	if err := orDefault("timeout", &s.timeout, DefaultTimeout); err != nil {
		return s, err
	}
	if o.Retries != nil {
		s.retries = *o.Retries
	}
	if s.retries < 0 || s.retries > 10 {
		return s, fmt.Errorf("retries must be between 0 and 10")
	}
	if err := orDefault("max_response", &s.maxResponse, DefaultMaxResponse); err != nil {
		return s, err
	}
	if err := orDefault("max_connections", &s.maxConnections, DefaultMaxConnections); err != nil {
		return s, err
	}
	if o.Rate != "" {
		if s.rate, err = parseRate(o.Rate); err != nil {
			return s, err
		}
		s.burst = o.Burst
		if s.burst == 0 {
			s.burst = max(1, int(math.Ceil(float64(s.rate))))
		}
	} else if o.Burst != 0 {
		return s, fmt.Errorf("burst goes with rate")
	}
	if s.burst < 0 {
		return s, fmt.Errorf("burst must be positive")
	}
	s.maxRetryAfter = time.Duration(o.MaxRetryAfter)
	if err := orDefault("max_retry_after", &s.maxRetryAfter, DefaultMaxRetryAfter); err != nil {
		return s, err
	}
	if err := orDefault("max_concurrent", &s.maxConcurrent, DefaultMaxConcurrent); err != nil {
		return s, err
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

// parseRate reads a rate option: N/s, N/m or N/h, N a positive number.
func parseRate(v string) (rate.Limit, error) {
	n, unit, ok := strings.Cut(v, "/")
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	f, err := strconv.ParseFloat(n, 64)
	if !ok || per == 0 || err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("rate %q: want N/s, N/m or N/h, such as 20/s", v)
	}
	return rate.Limit(f / per.Seconds()), nil
}

// orDefault gives an option its default when it is not set (zero), and refuses a negative one.
func orDefault[T int | int64 | time.Duration](name string, v *T, def T) error {
	if *v == 0 {
		*v = def
	}
	if *v < 0 {
		return fmt.Errorf("%s must be positive", name)
	}
	return nil
}
