package check

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestURLQuotesNoPieceOfAPassword: whatever makes a URL wrong, URL's
// message quotes it with its password masked, and no piece of the password
// Go's parser took for a host, a port or a path.
func TestURLQuotesNoPieceOfAPassword(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"nats://u:Pw0rdA/Pw0rdB@h:4222",       // '/' in the password: Go reads "Pw0rdA" as a port
		"nats://u:Pw0rdA#Pw0rdB@h:4222",       // '#': the rest is a fragment
		"nats://u:Pw0rdA?Pw0rdB@h:4222",       // '?': the rest is a query
		"nats://u:Pw0rdA Pw0rdB@h:4222",       // a blank
		"nats://u:Pw0rdA%zzPw0rdB@h:4222",     // a bad escape
		"nats://u:Pw0rdA@h:99999",             // a port out of range
		"tcp://u:Pw0rdA@h:4222",               // a wrong scheme
		"u:Pw0rdA@h:4222",                     // no scheme: "u" is read as one
		"nats://u:Pw0rdA@h1:4222, nats://x:y", // a list
	} {
		err := URL(raw, "nats", "tls")
		require.Error(t, err, raw)
		for _, piece := range []string{"Pw0rdA", "Pw0rdB"} {
			assert.NotContains(t, err.Error(), piece, "%s: %v", raw, err)
		}
	}
	err := URL("nats://u:Pw0rdA/Pw0rdB@h:4222", "nats")
	assert.ErrorContains(t, err, `"nats://u:REDACTED@h:4222": its user name or password holds characters to percent-encode`)
	// A URL without credentials is quoted as it is, with Go's reason.
	err = URL("nats://h:port", "nats")
	assert.ErrorContains(t, err, `is not a URL: "nats://h:port": invalid port ":port" after host`)
	assert.NoError(t, URL("nats://u:a%2Fb%23c%20d@h:4222", "nats"), "percent-encoded, a password may hold anything")
}

func TestShown(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"s3://bucket/prefix/":       "s3://bucket/prefix/",
		"s3://k:s/e@bucket/prefix/": "s3://k:REDACTED@bucket/prefix/",
		"k:secret@host/q":           "REDACTED@host/q",
		"host/q":                    "host/q",
		"nats://u:a b@h":            "nats://u:REDACTED@h",
	} {
		assert.Equal(t, want, Shown(raw), raw)
	}
}
