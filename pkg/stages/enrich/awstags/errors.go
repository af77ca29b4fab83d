package awstags

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrorKind classifies an AWS failure once, where it is born, so that the
// cache decides what to do from the kind and never from the message.
type ErrorKind uint8

const (
	// KindRetryable: a transient failure (5xx, network); worth retrying.
	KindRetryable ErrorKind = iota
	// KindThrottled: AWS asked us to slow down; retry after backing off.
	KindThrottled
	// KindNotFound: the API or stage does not exist (a valid answer).
	KindNotFound
	// KindPermanent: retrying cannot help (access denied, bad request, no
	// credentials for the account).
	KindPermanent
)

func (k ErrorKind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindThrottled:
		return "throttled"
	case KindNotFound:
		return "not-found"
	default:
		return "permanent"
	}
}

// Error is an AWS failure with what was being done and where.
type Error struct {
	Op      string // e.g. "apigateway:GetStages"
	Account string
	Region  string
	Kind    ErrorKind
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("awstags: %s in account %s region %s (%s): %v", e.Op, e.Account, e.Region, e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsRetryable reports whether err, or an error it wraps, is an AWS failure
// that may pass if tried again later.
func IsRetryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind == KindRetryable || e.Kind == KindThrottled
	}
	return false
}

func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == KindNotFound
}

// errNoCredentials is returned for an account no role is configured for
// when the pipeline's own credentials belong to another account.
var errNoCredentials = errors.New("no role configured for the account and the pipeline's own credentials belong to another account")

// classify decides what kind of failure err is.
func classify(err error) ErrorKind {
	if errors.Is(err, errNoCredentials) {
		return KindPermanent
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottledException", "TooManyRequestsException", "ThrottlingException", "Throttling",
			"RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown":
			return KindThrottled
		case "NotFoundException", "ResourceNotFoundException":
			return KindNotFound
		case "InternalServiceException", "InternalFailure", "InternalError", "ServiceUnavailable",
			"ServiceUnavailableException", "PaginationTokenExpiredException", "IDPCommunicationError":
			return KindRetryable
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == http.StatusTooManyRequests:
			return KindThrottled
		case code == http.StatusNotFound && ae != nil:
			return KindNotFound
		case code >= 500, code == http.StatusRequestTimeout:
			return KindRetryable
		case code >= 400:
			return KindPermanent
		}
	}
	if ae != nil {
		if ae.ErrorFault() == smithy.FaultServer {
			return KindRetryable
		}
		return KindPermanent
	}
	if errors.Is(err, context.Canceled) {
		return KindPermanent
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) {
		return KindRetryable
	}
	// Connection refused and other transport failures arrive wrapped in
	// the SDK's request send error: a network problem, so try again.
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return KindRetryable
	}
	return KindPermanent
}
