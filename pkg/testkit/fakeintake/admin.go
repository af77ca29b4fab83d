package fakeintake

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// maxAdminBody bounds admin request bodies; a Failure is a few hundred bytes.
const maxAdminBody = 64 << 10

func handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// handleValidate is the API's key check (GET /api/v1/validate): 200
// {"valid":true} for a valid key, 403 {"errors":["Forbidden"]} otherwise.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	if status, _ := s.authorize(r.Header.Get("DD-API-KEY")); status != 0 {
		writeJSON(w, http.StatusForbidden, []byte(`{"errors":["Forbidden"]}`))
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"valid":true}`))
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustJSON(s.Stats()))
}

func (s *Server) handleGetFailure(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, mustJSON(s.FailureState()))
}

// handleSetFailure decodes a Failure strictly: an unknown field is more
// likely a typo ("latency" for "latency_ms") than something to ignore.
func (s *Server) handleSetFailure(w http.ResponseWriter, r *http.Request) {
	var f Failure
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, apiErrorBody(0, fmt.Sprintf("decode failure: %v", err)))
		return
	}
	if err := s.SetFailure(f); err != nil {
		writeJSON(w, http.StatusBadRequest, apiErrorBody(0, err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, mustJSON(s.FailureState()))
}

func (s *Server) handleClearFailure(w http.ResponseWriter, _ *http.Request) {
	s.ClearFailure()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	s.log.Info("recordings reset")
	w.WriteHeader(http.StatusNoContent)
}
