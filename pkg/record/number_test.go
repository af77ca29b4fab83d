package record

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidNumber(t *testing.T) {
	t.Parallel()
	valid := []string{"0", "-0", "1", "-1", "10", "12", "1.5", "0.5", "1e10", "1E+10", "1e-10", "-1.5e3", "-1.5e+3", "123456789012345678901234567890"}
	invalid := []string{"", "-", "+1", "01", "-01", "1.", ".5", "1e", "1e+", "0x10", "NaN", "Infinity", "1 ", " 1", "1.5.5", "1e5e5", "--1"}
	for _, s := range valid {
		assert.True(t, ValidNumber([]byte(s)), s)
		assert.True(t, json.Valid([]byte(s)), s)
	}
	for _, s := range invalid {
		assert.False(t, ValidNumber([]byte(s)), s)
	}
}

// FuzzValidNumber: ValidNumber agrees with encoding/json on every input
// that could be a number (json.Valid also accepts other JSON values).
func FuzzValidNumber(f *testing.F) {
	for _, s := range []string{"0", "-1.5e+3", "01", "1.", "1e", ".5", "\"1\"", "true"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// A valid JSON value that starts with - or a digit and ends with
		// a digit (no white space around it) is a number.
		isNum := json.Valid(b) && len(b) > 0 && (b[0] == '-' || isDigit(b[0])) && isDigit(b[len(b)-1])
		if ValidNumber(b) != isNum {
			t.Fatalf("ValidNumber(%q) = %v, encoding/json says %v", b, !isNum, isNum)
		}
	})
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
