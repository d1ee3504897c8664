package palisade

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/module/provider"
)

const (
	// defaultTokenLife is an access token's life when the token endpoint does not say
	// (Palisade's tokens last one hour).
	defaultTokenLife = time.Hour
	// refreshMargin is how long before its expiry an access token is replaced, at most: a
	// minute, or a tenth of its life when that is shorter.
	refreshMargin = time.Minute
)

// tokenSource fetches access tokens from Palisade's token endpoint, caches the current one and
// replaces it shortly before it expires. Concurrent callers share one fetch; a caller whose
// context ends stops waiting for it.
type tokenSource struct {
	url          string
	clientID     string
	clientSecret string
	up           *provider.Upstream
	now          func() time.Time // time.Now; tests replace it

	mu        sync.Mutex
	current   string    // the cached access token, or empty
	refreshAt time.Time // when current is to be replaced
	flight    *tokenFetch
}

// tokenFetch is one call to the token endpoint, shared by every caller that waits for it.
// token and err are written before done is closed.
type tokenFetch struct {
	done  chan struct{}
	token string
	err   error
}

// tokenAnswer is the answer of POST /v2/credentials/oauth/token. expiresIn is a number of
// seconds; it goes through provider.Scalar because a JSON encoding of protobuf's int64 sends
// it as a string.
type tokenAnswer struct {
	AccessToken string          `json:"accessToken"`
	ExpiresIn   provider.Scalar `json:"expiresIn"`
}

func newTokenSource(url, clientID, clientSecret string, up *provider.Upstream) *tokenSource {
	return &tokenSource{url: url, clientID: clientID, clientSecret: clientSecret, up: up, now: time.Now}
}

// token returns a valid access token: the cached one, or a new one.
func (s *tokenSource) token(ctx context.Context) (string, error) {
	for {
		s.mu.Lock()
		if s.current != "" && s.now().Before(s.refreshAt) {
			tok := s.current
			s.mu.Unlock()
			return tok, nil
		}
		f := s.flight
		if f == nil {
			// This caller fetches; the others wait for it.
			f = &tokenFetch{done: make(chan struct{})}
			s.flight = f
			s.mu.Unlock()
			s.fetch(ctx, f)
			return f.token, f.err
		}
		s.mu.Unlock()

		select {
		case <-ctx.Done():
			return "", provider.ContextError(ctx, nil)
		case <-f.done:
		}
		if f.err == nil {
			return f.token, nil
		}
		if k := provider.KindOf(f.err); k != provider.KindCanceled && k != provider.KindTimeout {
			return "", f.err // the answer holds for this caller too
		}
		// The fetching caller went away or ran out of time; this one may still have time to
		// fetch a token itself.
		if ctx.Err() != nil {
			return "", provider.ContextError(ctx, nil)
		}
	}
}

// fetch calls the token endpoint for f, stores the token and ends the flight.
func (s *tokenSource) fetch(ctx context.Context, f *tokenFetch) {
	start := s.now()
	tok, life, err := s.request(ctx)
	s.mu.Lock()
	if err == nil {
		s.current = tok
		s.refreshAt = start.Add(life - min(refreshMargin, life/10))
	}
	f.token, f.err = tok, err
	s.flight = nil
	close(f.done)
	s.mu.Unlock()
}

// drop forgets token after the API refused it, so that the next call fetches another. A
// token that was already replaced is left alone.
func (s *tokenSource) drop(token string) {
	s.mu.Lock()
	if s.current == token {
		s.current = ""
	}
	s.mu.Unlock()
}

// request calls the token endpoint (without authentication) and returns the access token and
// its life. Repeating the call is harmless, so it is idempotent for Upstream.Do.
func (s *tokenSource) request(ctx context.Context) (string, time.Duration, error) {
	body := struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}{s.clientID, s.clientSecret}
	req, err := provider.NewRequest(ctx, http.MethodPost, s.url, body)
	if err != nil {
		return "", 0, err
	}
	resp, err := s.up.Do(req, true)
	if err != nil {
		return "", 0, err // transport failures, 5xx and 429 come classified
	}
	switch code := resp.StatusCode; {
	case code == http.StatusBadRequest || code == http.StatusUnauthorized || code == http.StatusForbidden:
		detail := "Palisade's token endpoint refused the client_id and client_secret"
		if _, d := errorCode(resp); d != "" {
			detail += " (" + d + ")"
		}
		return "", 0, &provider.Error{Kind: provider.KindAuth, StatusCode: code, Detail: detail}
	case code < 200 || code > 299:
		// A 404 here is a wrong base_url, not an unknown credential.
		return "", 0, &provider.Error{Kind: provider.KindUpstream, StatusCode: code, Detail: "Palisade's token endpoint answered HTTP " + strconv.Itoa(code)}
	}
	var ans tokenAnswer
	if err := provider.DecodeJSON(resp, "access token", &ans); err != nil {
		return "", 0, err
	}
	if ans.AccessToken == "" {
		return "", 0, provider.Malformed(resp.StatusCode, "access token: no accessToken", nil)
	}
	// A token that cannot be sent as "Authorization: Bearer <token>" is a malformed answer, not
	// a token to cache: a control character makes the HTTP client refuse every call with it
	// (a "connection error", for as long as the token was cached), and a space or a non-ASCII
	// byte is not a bearer token (RFC 6750 allows visible ASCII only). Found by FuzzToken.
	if !bearerToken(ans.AccessToken) {
		return "", 0, provider.Malformed(resp.StatusCode, "access token: not a bearer token (visible ASCII only)", nil)
	}
	return ans.AccessToken, tokenLife(ans.ExpiresIn), nil
}

// bearerToken reports whether tok can be sent as a bearer token: visible ASCII, 0x21 to 0x7E.
func bearerToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return false
		}
	}
	return tok != ""
}

// tokenLife reads expiresIn: seconds, as a number or a numeric string. Missing, zero,
// negative or unreadable means Palisade's documented hour.
func tokenLife(v provider.Scalar) time.Duration {
	secs, err := strconv.ParseFloat(strings.TrimSpace(v.String()), 64)
	if err != nil || secs <= 0 || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return defaultTokenLife
	}
	const maxSecs = float64(math.MaxInt64 / int64(time.Second))
	return time.Duration(math.Min(secs, maxSecs) * float64(time.Second))
}
