package digicert

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/credgate/credgate/module/provider"
)

// BenchmarkRequestBuild builds the read call of an API key, as Read does before sending it.
func BenchmarkRequestBuild(b *testing.B) {
	c := NewClient("https://www.digicert.com", "partner-key", &provider.Upstream{})
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.ep.Request(ctx, http.MethodGet, keyPath+url.PathEscape("12345"), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnswerDecode reads DigiCert's answer to the read call: the status and the metadata.
func BenchmarkAnswerDecode(b *testing.B) {
	resp := &provider.Response{StatusCode: 200, Body: []byte(`{"id":12345,"name":"build-server","account_id":1001,"status":"active","created_at":"2024-05-01T09:30:00Z","last_used_date":"2026-11-20T17:02:11Z","api_key_last4":"4345"}`)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if c, err := decodeKey(resp); err != nil || c.Status != provider.StatusActive {
			b.Fatal(err)
		}
	}
}
