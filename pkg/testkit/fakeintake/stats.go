package fakeintake

import "maps"

// Stats are the server's counters since New or the last Reset. Only the three
// intake endpoints are counted.
type Stats struct {
	// Requests counts intake requests by endpoint, whatever their outcome.
	Requests map[Endpoint]int64 `json:"requests"`
	// Responses counts intake requests by response status (499: abandoned
	// during an injected latency).
	Responses map[int]int64 `json:"responses"`
	// EndpointResponses counts intake requests by endpoint, then status.
	EndpointResponses map[Endpoint]map[int]int64 `json:"endpoint_responses"`
	// Encodings counts payloads read, by Content-Encoding ("identity" when
	// absent).
	Encodings map[string]int64 `json:"encodings"`

	// BytesReceived is the body bytes read as sent on the wire.
	BytesReceived int64 `json:"bytes_received"`
	// BytesUncompressed is the body bytes after decompression, for payloads
	// that decompressed within the limits.
	BytesUncompressed int64 `json:"bytes_uncompressed"`

	LogsAccepted  int64 `json:"logs_accepted"`
	LogsTruncated int64 `json:"logs_truncated"`
	// LogsEvicted counts accepted logs no longer kept in memory (Config.Keep).
	LogsEvicted int64 `json:"logs_evicted"`

	SeriesPointsAccepted int64 `json:"series_points_accepted"`
	// SeriesPointsRejectedTooOld and SeriesPointsRejectedTooNew count points
	// dropped by the age rules in answers that were still 202.
	SeriesPointsRejectedTooOld int64 `json:"series_points_rejected_too_old"`
	SeriesPointsRejectedTooNew int64 `json:"series_points_rejected_too_new"`
	SeriesPointsEvicted        int64 `json:"series_points_evicted"`

	DistributionPointsAccepted int64 `json:"distribution_points_accepted"`
	// DistributionValuesAccepted counts the raw values inside accepted
	// distribution points.
	DistributionValuesAccepted int64 `json:"distribution_values_accepted"`
	DistributionPointsEvicted  int64 `json:"distribution_points_evicted"`

	// FailuresInjected counts requests answered with an injected status;
	// DelaysInjected counts requests that waited an injected latency.
	FailuresInjected int64 `json:"failures_injected"`
	DelaysInjected   int64 `json:"delays_injected"`
	// DelaysInFlight is the number of requests held by an injected latency
	// right now. Reset does not zero it.
	DelaysInFlight int64 `json:"delays_in_flight"`
	// RecordErrors counts accepted payloads that could not be written to the
	// JSONL files (they are still answered 202 and kept in memory).
	RecordErrors int64 `json:"record_errors"`
}

func newStats() Stats {
	return Stats{
		Requests:          make(map[Endpoint]int64),
		Responses:         make(map[int]int64),
		EndpointResponses: make(map[Endpoint]map[int]int64),
		Encodings:         make(map[string]int64),
	}
}

// clone returns a deep copy, so callers can read it without the lock.
func (st *Stats) clone() Stats {
	c := *st
	c.Requests = maps.Clone(st.Requests)
	c.Responses = maps.Clone(st.Responses)
	c.Encodings = maps.Clone(st.Encodings)
	c.EndpointResponses = make(map[Endpoint]map[int]int64, len(st.EndpointResponses))
	for ep, m := range st.EndpointResponses {
		c.EndpointResponses[ep] = maps.Clone(m)
	}
	return c
}

// countResponse accounts one intake request answered with status.
func (st *Stats) countResponse(ep Endpoint, status int) {
	st.Requests[ep]++
	st.Responses[status]++
	m := st.EndpointResponses[ep]
	if m == nil {
		m = make(map[int]int64)
		st.EndpointResponses[ep] = m
	}
	m[status]++
}
