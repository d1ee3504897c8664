package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newUpstream(retries int) *Upstream {
	return &Upstream{
		Transport:   &http.Transport{},
		MaxResponse: 1 << 10,
		Retries:     retries,
		Backoff:     time.Millisecond,
		MaxBackoff:  4 * time.Millisecond,
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, 7*time.Second, ParseRetryAfter("7", now))
	assert.Equal(t, time.Duration(0), ParseRetryAfter("", now))
	assert.Equal(t, time.Duration(0), ParseRetryAfter("-3", now))
	assert.Equal(t, time.Duration(0), ParseRetryAfter("soon", now))
	assert.Equal(t, 24*time.Hour, ParseRetryAfter("999999999", now), "capped at a day")
	assert.Equal(t, 90*time.Second, ParseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	assert.Equal(t, time.Duration(0), ParseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
}

func TestDoClassifies(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header map[string]string
		body   string
		kind   Kind
		retry  time.Duration
	}{
		{"5xx", 500, nil, "{}", KindUpstream, 0},
		{"503", 503, nil, "{}", KindUpstream, 0},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "9"}, "{}", KindRateLimited, 9 * time.Second},
		{"oversized", 200, nil, strings.Repeat("x", 2<<10), KindUpstream, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
			}))
			defer srv.Close()
			req, err := NewRequest(context.Background(), http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			_, err = newUpstream(0).Do(req, true)
			var pe *Error
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, c.kind, pe.Kind)
			assert.Equal(t, c.status, pe.StatusCode)
			assert.Equal(t, c.retry, pe.RetryAfter)
		})
	}
}

func TestDoPassesVendorAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"code":5}`)
	}))
	defer srv.Close()
	req, _ := NewRequest(context.Background(), http.MethodGet, srv.URL, nil)
	resp, err := newUpstream(2).Do(req, true)
	require.NoError(t, err)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.JSONEq(t, `{"code":5}`, string(resp.Body))
}

func TestDoRetriesWhatIsSafe(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(body) // echo: the resent body must be whole
	}))
	defer srv.Close()

	req, _ := NewRequest(context.Background(), http.MethodPut, srv.URL, map[string]bool{"active": false})
	resp, err := newUpstream(2).Do(req, true)
	require.NoError(t, err)
	assert.Equal(t, int32(3), calls.Load())
	assert.JSONEq(t, `{"active":false}`, string(resp.Body))

	calls.Store(0)
	req, _ = NewRequest(context.Background(), http.MethodPost, srv.URL, map[string]string{})
	_, err = newUpstream(2).Do(req, false)
	assert.Equal(t, KindUpstream, KindOf(err))
	assert.Equal(t, int32(1), calls.Load(), "a 503 to a request that is not idempotent is not repeated")
}

func TestDoRepeatsAnyRequestNeverSent(t *testing.T) {
	// A closed port: the connection fails before a byte is written.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	var attempts atomic.Int32
	up := newUpstream(2)
	up.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		attempts.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	req, _ := NewRequest(context.Background(), http.MethodPost, "http://"+addr+"/x", map[string]string{})
	_, err = up.Do(req, false)
	assert.Equal(t, KindUpstream, KindOf(err))
	assert.Equal(t, int32(3), attempts.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDoNeverWaitsPastTheDeadline(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := NewRequest(ctx, http.MethodGet, srv.URL, nil)
	_, err := newUpstream(3).Do(req, true)
	var pe *Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, KindRateLimited, pe.Kind)
	assert.Equal(t, 30*time.Second, pe.RetryAfter, "the vendor's Retry-After is passed on")
	assert.Equal(t, int32(1), calls.Load(), "a 30s Retry-After does not fit a 2s budget")
}

func TestDoTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := NewRequest(ctx, http.MethodGet, srv.URL, nil)
	_, err := newUpstream(2).Do(req, true)
	assert.Equal(t, KindTimeout, KindOf(err))

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	req, _ = NewRequest(ctx, http.MethodGet, srv.URL, nil)
	_, err = newUpstream(2).Do(req, true)
	assert.Equal(t, KindCanceled, KindOf(err))
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	up := &Upstream{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for attempt := 0; attempt < 10; attempt++ {
		d := up.backoff(attempt)
		want := 100 * time.Millisecond << attempt
		if want > time.Second {
			want = time.Second
		}
		assert.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
		assert.LessOrEqual(t, d, want, "attempt %d", attempt)
	}
}

func TestScalar(t *testing.T) {
	var v struct {
		A Scalar `json:"a,omitempty"`
		B Scalar `json:"b,omitempty"`
		C Scalar `json:"c,omitempty"`
		D Scalar `json:"d,omitempty"`
	}
	require.NoError(t, jsonUnmarshal(`{"a": 12345, "b": "x\"y", "c": {"nested": 1}, "d": null}`, &v))
	assert.Equal(t, "12345", v.A.String())
	assert.Equal(t, `x"y`, v.B.String())
	assert.Nil(t, v.C, "objects are dropped")
	assert.Nil(t, v.D)
	out, err := jsonMarshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, `{"a": 12345, "b": "x\"y"}`, out)
}

func TestMalformedKeepsNoBodyText(t *testing.T) {
	resp := &Response{StatusCode: 200, Body: []byte(`{"clientSecret": "s3cr3t", "active": "yes"}`)}
	var v struct {
		Active bool `json:"active"`
	}
	err := DecodeJSON(resp, "credential", &v)
	require.Error(t, err)
	assert.Equal(t, KindUpstream, KindOf(err))
	assert.NotContains(t, err.Error(), "s3cr3t")
	assert.NotContains(t, err.Error(), "yes")

	err = DecodeJSON(&Response{StatusCode: 200}, "credential", &v)
	assert.Equal(t, KindUpstream, KindOf(err))
	assert.True(t, errors.As(err, new(*Error)))
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func jsonMarshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func TestEndpointRequest(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+r.Header.Get("X-Key")+" "+r.Header.Get("Content-Type")+" "+string(body))
	}))
	defer srv.Close()

	ep := NewEndpoint(srv.URL+"/proxy", "X-Key", "k1")
	up := newUpstream(0)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v2/credentials/ce4918bf-a199-4ce2-85a3-d0d296855384", nil},
		{http.MethodGet, "/v2/credentials/" + url.PathEscape("a?b#c%d e"), nil},
		{http.MethodPut, "/v2/credentials/x/active", map[string]bool{"active": false}},
	} {
		req, err := ep.Request(context.Background(), c.method, c.path, c.body)
		require.NoError(t, err)
		_, err = up.Do(req, true)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{
		"GET /proxy/v2/credentials/ce4918bf-a199-4ce2-85a3-d0d296855384 k1  ",
		"GET /proxy/v2/credentials/a%3Fb%23c%25d%20e k1  ",
		`PUT /proxy/v2/credentials/x/active k1 application/json {"active":false}`,
	}, got)

	// The header map is the endpoint's own, shared by its calls and never changed by them.
	req, _ := ep.Request(context.Background(), http.MethodGet, "/a", nil)
	assert.Equal(t, "application/json", req.Header.Get("Accept"))
	assert.Equal(t, UserAgent, req.Header.Get("User-Agent"))
	assert.Empty(t, req.Header.Get("Content-Type"))

	_, err := NewEndpoint("http://[::1", "X-Key", "k").Request(context.Background(), http.MethodGet, "/", nil)
	assert.Equal(t, KindUpstream, KindOf(err))
}
