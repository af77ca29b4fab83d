package stage

import (
	"errors"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// permanentError marks an error that retrying cannot fix: the input goes to
// the dead-letter topic at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying. It is applied once, where the
// error is born; callers ask IsPermanent instead of parsing messages.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// remainingError is a handler's failure after it finished part of its
// batch for good (see Remaining).
type remainingError struct {
	err  error
	rest *record.Batch
}

func (e *remainingError) Error() string { return e.err.Error() }
func (e *remainingError) Unwrap() error { return e.err }

// Remaining wraps err, which ends a handler before it finished its batch,
// with what of the batch is still undone: the handler dealt for good with
// the rest (delivered it, dead-lettered it). The runtime then treats rest
// as the batch: a retry handles rest only, the dead-letter topic gets rest,
// and a batch given up counts rest's records, lost or handed back. On a
// broker, a batch handed back is replaced by rest, published again for the
// stage alone, so that the redelivery does not send again what was done
// (see Runtime.leaveRest).
//
// It matters where a second delivery is not harmless, as distribution
// values, which Datadog adds up. Handle must return it as is, not wrapped:
// the runtime looks only at the error Handle returns, so that a stage
// called in memory by another (a fused topic) does not pass its rest off
// as its caller's: Emit tells its caller apart (EmitRest).
func Remaining(err error, rest *record.Batch) error {
	if err == nil || rest == nil {
		return err
	}
	return &remainingError{err: err, rest: rest}
}

// remainder returns the rest err carries, if Handle returned Remaining.
func remainder(err error) (*record.Batch, bool) {
	re, ok := err.(*remainingError) //nolint:errorlint // only the error Handle returned, not one it wraps (see Remaining)
	if !ok {
		return nil, false
	}
	return re.rest, true
}
