package credentialstatus

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// SetTransport replaces the HTTP transport of the provider named name, so that a test or a
// benchmark can answer its calls in memory.
func SetTransport(h *Handler, name string, rt http.RoundTripper) {
	h.backends[name].observer.next = rt
}

// SetAuditLogger replaces the logger of the handler's audit trail.
func SetAuditLogger(h *Handler, l *zap.Logger) { h.auditLog = l }

// ResolutionCount reads the series of resolutions_total of result.
func ResolutionCount(result string) float64 {
	return testutil.ToFloat64(metricResolutions.WithLabelValues(result))
}
