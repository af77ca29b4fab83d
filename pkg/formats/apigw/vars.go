package apigw

import (
	"strings"
	"sync"
	"sync/atomic"
)

// valueClass constrains what a variable's rendered value may contain; the
// template matcher uses it to disambiguate variables separated by literals
// that may also occur inside values (spaces, commas).
type valueClass uint8

// Each class is the shape API Gateway renders the variable in; every class
// also takes the "-" of an unset variable, and the empty text (see classFit).
const (
	classAny     valueClass = iota // anything (free text: routeKey, userAgent, messages)
	classToken                     // no whitespace (ids, ip, host, protocol)
	classNumber                    // unsigned decimal: digits, then maybe '.' and digits (latencies, lengths, epochs)
	classStatus                    // an HTTP status: three digits
	classMethod                    // an HTTP method: RFC 9110 token characters, so no '/' or space
	classPath                      // '/' then no whitespace
	classCLFTime                   // dd/MMM/yyyy:HH:mm:ss +hhmm (requestTime), one inner space
)

// valueType says how the apigateway.<name> attribute of a variable is typed.
type valueType uint8

const (
	typeAuto   valueType = iota // Number when the value is a valid JSON number, else String
	typeString                  // always String (ids that may look numeric: accountId, apiId…)
	typeNumber                  // Number when valid, else String
)

// role is the semantic meaning of a variable for the standard-attribute mapping.
type role uint8

const (
	roleNone role = iota
	roleMethod
	roleStatus
	rolePath
	roleResourcePath
	roleRouteKey
	roleSourceIP
	roleUserAgent
	roleRequestID
	roleExtRequestID
	roleResponseLatency
	roleResponseLength
	roleDataProcessed
	roleProtocol
	roleRequestTime      // CLF time, or epoch when numeric (alias "requestTime" in detection)
	roleRequestTimeEpoch // ms (seconds/µs scaled)
	roleErrorMessage
	roleErrorType
	roleIntegrationLatency  // integrationLatency
	roleIntegrationLatency2 // integration.latency
	roleIntegrationStatus   // integration.status (the backend's own status)
	roleIntegrationStatus2  // integrationStatus / integration.integrationStatus
	roleIntegrationError
	roleIntegrationRequestID
	rolePrincipalID
	roleAuthStatus
	roleAuthLatency
	roleAuthError
	roleWAFResponseCode
	roleWAFStatus
	roleWAFLatency
	roleWAFError
	roleWebACL
	roleDomainName
	numRoles
)

// varInfo describes one $context variable. Pointers to varInfo are stable and
// shared; key is precomputed so building attributes never allocates.
type varInfo struct {
	id    int    // unique, dense for built-in variables
	name  string // "identity.sourceIp" (no "context." prefix)
	key   string // "apigateway.identity.sourceIp"
	class valueClass
	typ   valueType
	role  role
}

var (
	varMu     sync.Mutex
	varNextID int
	// knownVars is immutable after init: built-in $context variables by name.
	knownVars = buildKnownVars()
	// dynVars holds variables learned at run time (templates, unknown JSON keys),
	// copy-on-write so readers never lock. Bounded by maxDynVars.
	dynVars atomic.Pointer[map[string]*varInfo]
)

// maxDynVars bounds the interned dynamic variable table; beyond it a key is
// built per record (allocating) rather than growing memory without limit.
const maxDynVars = 4096

// maxSeenID is the number of variable ids tracked by the per-record dedupe
// bitmap; variables with larger ids fall back to a linear scan.
const maxSeenID = 1024

func newVar(name string, class valueClass, typ valueType, r role) *varInfo {
	v := &varInfo{id: varNextID, name: name, key: "apigateway." + name, class: class, typ: typ, role: r}
	varNextID++
	return v
}

func buildKnownVars() map[string]*varInfo {
	known := map[string]*varInfo{}
	defVar := func(name string, class valueClass, typ valueType, r role) {
		known[name] = newVar(name, class, typ, r)
	}
	tok, num, free := classToken, classNumber, classAny
	status, method, path, clfTime := classStatus, classMethod, classPath, classCLFTime
	S, N := typeString, typeNumber
	// identity and request
	defVar("accountId", tok, S, roleNone)
	defVar("apiId", tok, S, roleNone)
	defVar("awsEndpointRequestId", tok, S, roleIntegrationRequestID)
	defVar("awsEndpointRequestId2", tok, S, roleNone)
	defVar("connectedAt", num, N, roleNone)
	defVar("connectionId", tok, S, roleNone)
	defVar("customDomain.basePathMatched", tok, S, roleNone)
	defVar("dataProcessed", num, N, roleDataProcessed)
	defVar("domainName", tok, S, roleDomainName)
	defVar("domainPrefix", tok, S, roleNone)
	defVar("error.message", free, S, roleErrorMessage)
	defVar("error.messageString", free, S, roleNone)
	defVar("error.responseType", tok, S, roleErrorType)
	defVar("error.validationErrorString", free, S, roleNone)
	defVar("eventType", tok, S, roleNone)
	defVar("extendedRequestId", tok, S, roleExtRequestID)
	defVar("httpMethod", method, S, roleMethod)
	defVar("identity.accountId", tok, S, roleNone)
	defVar("identity.apiKey", tok, S, roleNone)
	defVar("identity.apiKeyId", tok, S, roleNone)
	defVar("identity.caller", tok, S, roleNone)
	defVar("identity.cognitoAuthenticationProvider", tok, S, roleNone)
	defVar("identity.cognitoAuthenticationType", tok, S, roleNone)
	defVar("identity.cognitoIdentityId", tok, S, roleNone)
	defVar("identity.cognitoIdentityPoolId", tok, S, roleNone)
	defVar("identity.principalOrgId", tok, S, roleNone)
	defVar("identity.sourceIp", tok, S, roleSourceIP)
	defVar("identity.clientCert.clientCertPem", free, S, roleNone)
	defVar("identity.clientCert.subjectDN", free, S, roleNone)
	defVar("identity.clientCert.issuerDN", free, S, roleNone)
	defVar("identity.clientCert.serialNumber", tok, S, roleNone)
	defVar("identity.clientCert.validity.notBefore", free, S, roleNone)
	defVar("identity.clientCert.validity.notAfter", free, S, roleNone)
	defVar("identity.user", tok, S, roleNone)
	defVar("identity.userAgent", free, S, roleUserAgent)
	defVar("identity.userArn", tok, S, roleNone)
	defVar("messageId", tok, S, roleNone)
	defVar("path", path, S, rolePath)
	defVar("protocol", tok, S, roleProtocol)
	defVar("requestId", tok, S, roleRequestID)
	defVar("requestTime", clfTime, S, roleRequestTime)
	defVar("requestTimeEpoch", num, N, roleRequestTimeEpoch)
	defVar("resourceId", tok, S, roleNone)
	defVar("resourcePath", path, S, roleResourcePath)
	defVar("responseLatency", num, N, roleResponseLatency)
	defVar("responseLength", num, N, roleResponseLength)
	defVar("routeKey", free, S, roleRouteKey)
	defVar("stage", tok, S, roleNone)
	defVar("status", status, N, roleStatus)
	defVar("wafResponseCode", tok, S, roleWAFResponseCode)
	defVar("webaclArn", tok, S, roleWebACL)
	defVar("xrayTraceId", tok, S, roleNone)
	defVar("responseOverride.status", status, N, roleNone)
	// integration
	defVar("integrationErrorMessage", free, S, roleIntegrationError)
	defVar("integrationLatency", num, N, roleIntegrationLatency)
	defVar("integrationStatus", status, N, roleIntegrationStatus2)
	defVar("integration.error", free, S, roleIntegrationError)
	defVar("integration.integrationStatus", status, N, roleIntegrationStatus2)
	defVar("integration.latency", num, N, roleIntegrationLatency2)
	defVar("integration.requestId", tok, S, roleIntegrationRequestID)
	defVar("integration.status", status, N, roleIntegrationStatus)
	// authorizer / authorize / authenticate
	defVar("authorizer.principalId", tok, S, rolePrincipalID)
	defVar("authorizer.error", free, S, roleAuthError)
	defVar("authorizer.integrationLatency", num, N, roleNone)
	defVar("authorizer.integrationStatus", status, N, roleNone)
	defVar("authorizer.latency", num, N, roleAuthLatency)
	defVar("authorizer.requestId", tok, S, roleNone)
	defVar("authorizer.status", status, N, roleAuthStatus)
	defVar("authorize.error", free, S, roleAuthError)
	defVar("authorize.latency", num, N, roleAuthLatency)
	defVar("authorize.status", status, N, roleAuthStatus)
	defVar("authenticate.error", free, S, roleNone)
	defVar("authenticate.latency", num, N, roleNone)
	defVar("authenticate.status", status, N, roleNone)
	// WAF
	defVar("waf.error", free, S, roleWAFError)
	defVar("waf.latency", num, N, roleWAFLatency)
	defVar("waf.status", status, N, roleWAFStatus)

	if varNextID > maxSeenID {
		panic("apigw: too many built-in variables")
	}
	return known
}

// jsonAliases maps common JSON (and XML) key names used in access-log formats
// to the $context variable they usually hold. Used only when no format is
// known for a log group. Keys are matched exactly, then lower-cased.
var jsonAliases = map[string]string{
	"ip": "identity.sourceIp", "sourceIp": "identity.sourceIp", "sourceIP": "identity.sourceIp",
	"clientIp": "identity.sourceIp", "client_ip": "identity.sourceIp", "remoteAddr": "identity.sourceIp",
	"caller": "identity.caller", "user": "identity.user", "userArn": "identity.userArn",
	"userAgent": "identity.userAgent", "user_agent": "identity.userAgent", "ua": "identity.userAgent",
	"apiKey": "identity.apiKey", "apiKeyId": "identity.apiKeyId",
	"requestTime": "requestTime", "time": "requestTime",
	"requestTimeEpoch": "requestTimeEpoch", "epoch": "requestTimeEpoch",
	"httpMethod": "httpMethod", "method": "httpMethod", "http_method": "httpMethod",
	"resourcePath": "resourcePath", "resource": "resourcePath",
	"routeKey": "routeKey", "route": "routeKey",
	"path": "path", "requestPath": "path",
	"status": "status", "statusCode": "status", "status_code": "status", "httpStatus": "status",
	"protocol":       "protocol",
	"responseLength": "responseLength", "bytes": "responseLength",
	"dataProcessed": "dataProcessed",
	"requestId":     "requestId", "request_id": "requestId", "requestID": "requestId",
	"extendedRequestId": "extendedRequestId",
	"apiId":             "apiId", "stage": "stage", "accountId": "accountId",
	"domainName": "domainName", "domainPrefix": "domainPrefix",
	"responseLatency": "responseLatency", "latency": "responseLatency",
	"integrationLatency": "integrationLatency", "integrationStatus": "integrationStatus",
	"integrationError": "integrationErrorMessage", "integrationErrorMessage": "integrationErrorMessage",
	"integrationRequestId": "integration.requestId",
	"errorMessage":         "error.message", "error": "error.message",
	"errorResponseType": "error.responseType", "responseType": "error.responseType",
	"errorMessageString": "error.messageString",
	"validationError":    "error.validationErrorString",
	"principalId":        "authorizer.principalId", "authorizerPrincipalId": "authorizer.principalId",
	"authorizerError": "authorizer.error", "authorizerLatency": "authorizer.latency",
	"authorizerStatus": "authorizer.status", "authorizerIntegrationLatency": "authorizer.integrationLatency",
	"authorizeError": "authorize.error", "authorizeLatency": "authorize.latency", "authorizeStatus": "authorize.status",
	"authenticateError": "authenticate.error", "authenticateLatency": "authenticate.latency",
	"authenticateStatus": "authenticate.status",
	"wafResponseCode":    "wafResponseCode", "webaclArn": "webaclArn",
	"wafError": "waf.error", "wafLatency": "waf.latency", "wafStatus": "waf.status",
	"connectionId": "connectionId", "eventType": "eventType", "messageId": "messageId",
	"connectedAt": "connectedAt",
	"xrayTraceId": "xrayTraceId", "awsEndpointRequestId": "awsEndpointRequestId",
	"resourceId": "resourceId",
}

// aliasVars is jsonAliases resolved, plus every built-in variable by its own
// name (with or without a "context."/"$context." prefix). Immutable after init.
var aliasVars = func() map[string]*varInfo {
	m := map[string]*varInfo{}
	for alias, name := range jsonAliases {
		v := knownVars[name]
		if v == nil {
			panic("apigw: alias " + alias + " to unknown variable " + name)
		}
		m[alias] = v
	}
	for _, v := range knownVars {
		m[v.name] = v
		m["context."+v.name] = v
		m["$context."+v.name] = v
	}
	return m
}()

// lookupVar returns the variable for a $context name (without "context."),
// creating and interning a dynamic one for names that are not built in
// (authorizer.claims.sub, requestOverride.header.x, …).
func lookupVar(name string) *varInfo {
	if v := knownVars[name]; v != nil {
		return v
	}
	return internDyn(name, dynClassFor(name))
}

func dynClassFor(string) valueClass { return classAny }

// internDyn returns the shared dynamic variable for name, or a fresh
// uninterned one once the table is full.
func internDyn(name string, class valueClass) *varInfo {
	if m := dynVars.Load(); m != nil {
		if v := (*m)[name]; v != nil {
			return v
		}
	}
	varMu.Lock()
	defer varMu.Unlock()
	var cur map[string]*varInfo
	if m := dynVars.Load(); m != nil {
		cur = *m
	}
	if v := cur[name]; v != nil {
		return v
	}
	if len(cur) >= maxDynVars {
		return &varInfo{id: -1, name: name, key: "apigateway." + name, class: class, typ: typeAuto}
	}
	name = strings.Clone(name)
	v := newVar(name, class, typeAuto, roleNone)
	next := make(map[string]*varInfo, len(cur)+1)
	for k, x := range cur {
		next[k] = x
	}
	next[name] = v
	dynVars.Store(&next)
	return v
}

// aliasForKey resolves a JSON/XML key (flattened path) found in a log line when
// no template maps it: the alias table, then the lower-cased key, then a
// dynamic variable named after the key (nil for keys that cannot name an
// attribute). The lookup does not allocate for keys already seen.
func aliasForKey(key []byte) *varInfo {
	if v := aliasVars[string(key)]; v != nil {
		return v
	}
	if m := dynVars.Load(); m != nil {
		if v := (*m)[string(key)]; v != nil {
			return v
		}
	}
	if len(key) > 2 && key[0] == '$' {
		// "$context.x" spelled in a key
		if v := aliasVars[string(key[1:])]; v != nil {
			return v
		}
	}
	var low [64]byte
	if len(key) <= len(low) {
		changed := false
		for i, c := range key {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
				changed = true
			}
			low[i] = c
		}
		if changed {
			if v := lowerAliases[string(low[:len(key)])]; v != nil {
				return v
			}
		} else if v := lowerAliases[string(key)]; v != nil {
			return v
		}
	}
	if !validDynKey(key) {
		return nil
	}
	return internDyn(string(key), classAny)
}

// validDynKey accepts keys that make sane attribute paths: no empty dotted
// segment, no control characters.
func validDynKey(key []byte) bool {
	if len(key) == 0 || len(key) > maxKeyLen || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i, c := range key {
		if c < 0x20 || c == 0x7f || (c == '.' && key[i-1] == '.') {
			return false
		}
	}
	return true
}

// lowerAliases maps lower-cased alias keys (e.g. "httpmethod", "ip") to
// variables, for keys written in another case ("IP", "HttpMethod").
var lowerAliases = func() map[string]*varInfo {
	m := map[string]*varInfo{}
	for alias, v := range aliasVars {
		l := strings.ToLower(alias)
		if w, ok := m[l]; ok && w != v {
			panic("apigw: ambiguous lower-case alias " + l)
		}
		m[l] = v
	}
	return m
}()
