package awstags

import (
	"net/url"
	"strings"
)

// arnFields splits "arn:partition:service:region:account:resource".
func arnFields(arn string) (service, region, account, resource string, ok bool) {
	if !strings.HasPrefix(arn, "arn:") {
		return "", "", "", "", false
	}
	rest := arn[len("arn:"):]
	var f [4]string
	for i := 0; i < 4; i++ {
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return "", "", "", "", false
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	return f[1], f[2], f[3], rest, true
}

// ARNRegionAccount returns the region and account fields of an ARN (either
// may be empty, as in S3 bucket ARNs).
func ARNRegionAccount(arn string) (region, account string) {
	_, region, account, _, _ = arnFields(arn)
	return region, account
}

// DestinationName maps a stage's accessLogSettings.destinationArn to the
// name records carry: the log group of
// "arn:aws:logs:{region}:{account}:log-group:{name}" (with or without a
// trailing ":*"), or the delivery stream of
// "arn:aws:firehose:{region}:{account}:deliverystream/{name}".
func DestinationName(arn string) (string, bool) {
	service, _, _, res, ok := arnFields(arn)
	if !ok {
		return "", false
	}
	switch service {
	case "logs":
		name, found := strings.CutPrefix(res, "log-group:")
		if !found {
			return "", false
		}
		// Log group names cannot contain ':', so anything after one is the
		// ":*" stream wildcard the console appends.
		if i := strings.IndexByte(name, ':'); i >= 0 {
			name = name[:i]
		}
		return name, name != ""
	case "firehose":
		name, found := strings.CutPrefix(res, "deliverystream/")
		return name, found && name != ""
	}
	return "", false
}

// apigwResource is a parsed API Gateway ARN from the tagging API.
type apigwResource struct {
	region string
	v2     bool // "/apis/…" (HTTP and WebSocket) rather than "/restapis/…"
	apiID  string
	stage  string // "" for the API itself
}

// parseAPIGatewayARN parses "arn:{partition}:apigateway:{region}::/restapis/{id}"
// and "…/apis/{id}", optionally followed by "/stages/{stage}". Other API
// Gateway resources (deployments, routes, …) are not ours: the tagging API
// matches resource types by prefix, so they may appear and are skipped.
func parseAPIGatewayARN(arn string) (apigwResource, bool) {
	service, region, _, res, ok := arnFields(arn)
	if !ok || service != "apigateway" || !strings.HasPrefix(res, "/") {
		return apigwResource{}, false
	}
	parts := strings.Split(res[1:], "/")
	var r apigwResource
	switch parts[0] {
	case "restapis":
	case "apis":
		r.v2 = true
	default:
		return apigwResource{}, false
	}
	switch {
	case len(parts) == 2 && parts[1] != "":
	case len(parts) == 4 && parts[1] != "" && parts[2] == "stages" && parts[3] != "":
		r.stage = parts[3]
		if strings.IndexByte(r.stage, '%') >= 0 {
			if s, err := url.PathUnescape(r.stage); err == nil {
				r.stage = s
			}
		}
	default:
		return apigwResource{}, false
	}
	r.region, r.apiID = region, parts[1]
	return r, true
}
