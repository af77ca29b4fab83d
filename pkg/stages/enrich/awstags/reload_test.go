package awstags

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// TestSetMappingsRenamesLaterRecords: a reload's mappings name the records
// resolved after it (the memo of the old mappings is not consulted), with
// AWS and without; invalid mappings are refused and the current ones stay.
func TestSetMappingsRenamesLaterRecords(t *testing.T) {
	h := newHarness(t, Config{RoleTemplate: roleCfg.RoleTemplate, Mappings: []Mapping{{LogGroup: "/custom/*", APIID: "m1m2m3m4m5", Stage: "live"}}})
	o, err := NewOffline(Config{Mappings: []Mapping{{LogGroup: "/custom/*", APIID: "m1m2m3m4m5", Stage: "live"}}})
	require.NoError(t, err)
	for name, r := range map[string]interface {
		Resolve(*record.Record) (StageKey, bool)
		SetMappings([]Mapping) error
	}{"tagger": h.t, "offline": o} {
		rec := accessRecord(acctA, usE1, "/custom/x", "", "", "")
		key, _ := r.Resolve(rec)
		assert.Equal(t, "m1m2m3m4m5", key.APIID, name)

		require.NoError(t, r.SetMappings([]Mapping{{LogGroup: "/custom/x", APIID: "n1n2n3n4n5", Stage: "prod", Region: "eu-west-1"}}))
		key, _ = r.Resolve(rec)
		assert.Equal(t, StageKey{Account: acctA, Region: "eu-west-1", APIID: "n1n2n3n4n5", Stage: "prod"}, key, name)

		err := r.SetMappings([]Mapping{{LogGroup: "/other/*"}})
		require.ErrorContains(t, err, "mappings[0].api_id: is required", name)
		key, _ = r.Resolve(rec)
		assert.Equal(t, "n1n2n3n4n5", key.APIID, "%s: the current mappings stay", name)

		require.NoError(t, r.SetMappings(nil))
		key, _ = r.Resolve(rec)
		assert.Equal(t, StageKey{Account: acctA, Region: usE1, LogGroup: "/custom/x"}, key, "%s: no mapping", name)
	}
}

// TestSetRolesReadsAffectedAccountsAgain: an account the pipeline's own
// credentials cannot read becomes readable once a reload gives it a role:
// it is read again at once with the role, without waiting for the
// negative TTL. Invalid role settings are refused.
func TestSetRolesReadsAffectedAccountsAgain(t *testing.T) {
	h := newHarness(t, Config{})
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	key := StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}
	_, complete := h.lookup(t, key)
	require.False(t, complete, "own credentials do not read another account")
	require.Error(t, h.event(t).Err)

	err := h.t.SetRoles(Config{RoleTemplate: "arn:aws:iam::role/no-account"})
	require.ErrorContains(t, err, "role_template")

	require.NoError(t, h.t.SetRoles(Config{RoleOverrides: map[string]string{acctA: "arn:aws:iam::111111111111:role/reader"}, ExternalID: "x-1"}))
	ev := h.event(t)
	require.NoError(t, ev.Err, "read again with the role")
	assert.Equal(t, acctA, ev.Account)
	info, complete := h.lookup(t, key)
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "team:payments")

	// The same settings again change nothing: the same credentials, no
	// new read.
	h.t.mu.Lock()
	before := h.t.accounts[acctA].auth.Load()
	h.t.mu.Unlock()
	require.NoError(t, h.t.SetRoles(Config{RoleOverrides: map[string]string{acctA: "arn:aws:iam::111111111111:role/reader"}, ExternalID: "x-1"}))
	h.t.mu.Lock()
	after := h.t.accounts[acctA].auth.Load()
	h.t.mu.Unlock()
	assert.Same(t, before, after)
	assert.Equal(t, "arn:aws:iam::111111111111:role/reader", after.role)
	assert.Equal(t, "x-1", after.externalID)
}
