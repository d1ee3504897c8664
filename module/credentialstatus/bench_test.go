package credentialstatus

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/credgate/credgate/module/provider"
)

// The hot path's parts, measured alone. BenchmarkCachedRequest (hotpath_bench_test.go)
// measures them together.

func BenchmarkRequestDecode(b *testing.B) {
	body := []byte(`{"status":"inactive","reason":"leaked in INC-42"}`)
	req := httptest.NewRequest(http.MethodPut, "/credentials/12345/status", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "INC-42-12345")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if p := checkJSONContentType(req); p != nil {
			b.Fatal(p)
		}
		if _, p := parseChange(req, body); p != nil {
			b.Fatal(p)
		}
	}
}

func BenchmarkCredentialID(b *testing.B) {
	req := httptest.NewRequest(http.MethodPut, "/credentials/ce4918bf-a199-4ce2-85a3-d0d296855384/status", nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ours, err := credentialID(req.URL); !ours || err != nil {
			b.Fatal(ours, err)
		}
	}
}

func BenchmarkResponseEncode(b *testing.B) {
	changed := false
	body := &statusBody{
		ID: "12345", Provider: "digicert-parent", Adapter: "digicert", Status: provider.StatusActive,
		Changed: &changed, ProviderStatus: "active",
		// As DigiCert's adapter passes it on: its members copied, not decoded.
		Credential: json.RawMessage(`{"id":12345,"name":"build-server","account_id":1001,"created_at":"2024-05-01T09:30:00Z","last_used_date":"2026-11-20T17:02:11Z","api_key_last4":"4345"}`),
	}
	w := &nullWriter{h: http.Header{}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		writeJSON(w, http.StatusOK, body)
	}
}

type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(int)             {}
