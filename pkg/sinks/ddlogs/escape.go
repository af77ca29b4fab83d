package ddlogs

import (
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// str views b as a string without copying; the string must not outlive b's
// contents staying unchanged (it is only used while rendering).
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// validNumber is record.ValidNumber, the one JSON number grammar.
func validNumber(b []byte) bool { return record.ValidNumber(b) }
