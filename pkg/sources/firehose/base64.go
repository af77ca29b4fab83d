package firehose

import (
	"bytes"
	"encoding/base64"
)

// decodeBase64InPlace replaces p's standard, padded base64 with the bytes
// it stands for, written from p[0]: n of them when ok. When p is not such
// base64 (an invalid character, padding before the end, a line break, the
// unpadded form), ok is false and p is left exactly as it was, for the
// decode stage to read, or dead-letter, as it reads any raw record.
//
// In place, because the record's base64 is already charged to the request
// (MaxInFlightBytes, the memory budget): a second buffer of three quarters
// its size would have to be charged too, and the largest request allowed
// would no longer fit.
func decodeBase64InPlace(p []byte) (n int, ok bool) {
	// Line breaks are skipped by the decoder, which would shift quanta
	// across blocks and make the original impossible to restore.
	if len(p)%4 != 0 || bytes.IndexByte(p, '\n') >= 0 || bytes.IndexByte(p, '\r') >= 0 {
		return 0, false
	}
	// Block by block through a buffer on the stack: block i's output
	// (at most 768 bytes at 768*i) ends before block i+1's input starts
	// (1024*(i+1)), so no byte is overwritten before it is read.
	var out [768]byte
	for i := 0; i < len(p); i += 1024 {
		end := min(i+1024, len(p))
		m, err := base64.StdEncoding.Decode(out[:], p[i:end])
		if err != nil || (end < len(p) && m != len(out)) { // padding before the end
			restoreBase64(p, n)
			return 0, false
		}
		n += copy(p[n:], out[:m])
	}
	return n, true
}

// restoreBase64 writes back the base64 of p[:n], whole blocks of decoded
// quanta (n a multiple of 3), over p[:n/3*4]: last quantum first, since
// quantum k's text (p[4k:4k+4]) lies at or after the bytes of every
// quantum below k. Each full quantum has one standard encoding, so this is
// the text that was there.
func restoreBase64(p []byte, n int) {
	for k := n/3 - 1; k >= 0; k-- {
		q := [3]byte{p[3*k], p[3*k+1], p[3*k+2]}
		base64.StdEncoding.Encode(p[4*k:4*k+4], q[:])
	}
}
