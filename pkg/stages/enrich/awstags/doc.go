// Package awstags gives every API Gateway log the tags its stage carries in
// AWS, as the console shows them, for any number of accounts and regions
// from one fleet.
//
// # What a stage's records get
//
// Info.Tags, computed once per stage and shared by all its records:
//
//   - apiid, apiname, stage, region, aws_account (the AWS integration's
//     tag keys, docs/wire-formats.md#datadog-tags-for-api-gateway);
//   - the REST or HTTP/WebSocket API's tags merged with the stage's tags,
//     the stage winning on a conflict (API Gateway's own inheritance rule:
//     GetTags on a stage does not return the API's tags, so the console's
//     "effective" view is the merge);
//   - gwpipe_tags:partial when the stage's tags were not known in time.
//
// Info.Service and Info.Env are the values of the stage's (or API's)
// "service" and "env" tags.
//
// # Permissions
//
// In every account read: apigateway:GET (GetRestApis, GetRestApi,
// GetStages, and the v2 GetApis, GetApi, GetStages are all GET requests)
// and tag:GetResources. Nothing else: sts:GetCallerIdentity, used once to
// learn the pipeline's own account when no role is configured, needs no
// permission. With roles, the pipeline needs sts:AssumeRole on them, and
// each role's trust policy must name the pipeline's principal (and the
// external id, if one is configured).
//
// # Accounts and credentials
//
// The account of a record comes from record.Origin (the CloudWatch owner,
// the Firehose source ARN, @aws.account), its region likewise or from the
// configured defaults (see Tagger.Resolve). Calls into an account use the
// role of Config.RoleOverrides, else Config.RoleTemplate with {account}
// replaced, assumed through STS with the optional external id; the
// credentials are cached and renewed before they expire
// (stscreds.AssumeRoleProvider inside aws.CredentialsCache). With no role
// for an account the pipeline's own credentials are used, if they belong to
// that account: a single-account setup needs no configuration at all. An
// account that cannot be read (no role, access denied, unreachable) gets
// partial tags and is asked again after NegativeTTL; it never holds up the
// others, whose reads run independently.
//
// # The cache
//
// The unit of caching is an inventory: one account in one region. Its
// first use starts a read of every REST API (GetRestApis, paginated) and
// every HTTP and WebSocket API (GetApis), the stages of each (GetStages:
// their tags and accessLogSettings), and tag:GetResources over the
// resource types apigateway:restapis/stages, apigateway:apis/stages,
// apigateway:restapis and apigateway:apis (paginated, 100 per page). Later
// refreshes run in the background after TTL (±Jitter); records keep being
// served from the previous data meanwhile, and while AWS errors last. The
// number of AWS calls therefore depends on the number of APIs and on time,
// never on log volume: per inventory and TTL, 2 listing calls (more for
// more than 500 REST APIs), one GetStages per API, and one GetResources
// per 100 tagged resources.
//
// A lookup of a stage missing from a read younger than NegativeTTL is
// answered "unknown" at once (negative caching); after that, one read of
// that API alone (GetRestApi or GetApi, then GetStages) runs, at most once
// per NegativeTTL per API. Concurrent misses share one read (single
// flight). A record waits for a read it started at most MaxWait (the enrich
// stage waits once per batch, for all its stages together), and only the
// first record to wait for a given read does so: the others go on at once,
// with the tags that are known, flagged partial. Records are never held
// and never dropped. The first read of an account with many APIs takes one
// GetStages per API at the account's rate (1,000 APIs: about 100 s at 10
// requests/s); its records are partial until it is over.
//
// Calls per account pass a token bucket (RatePerSecond, Burst: API
// Gateway's control plane allows 10 requests/s, burst 40, per account,
// shared with deployments); a throttled call (ThrottledException,
// TooManyRequestsException) pauses all calls of its account, and is retried
// with exponential back-off like other retryable failures, up to
// MaxAttempts. MaxStages bounds the stages cached; inventories unused for
// four TTLs are dropped. Close stops everything the Tagger started.
//
// The hot path (Tagger.Peek on a cached stage) is a few atomic loads and
// three map reads: no lock, no clock, no allocation. Tagger.Resolve does not
// allocate either. A stage's tags are built once per read and shared by all
// its records.
//
// # Access-log formats
//
// Each stage's accessLogSettings.format goes to Config.OnFormat with the
// name records carry for its destination: the log group of
// arn:aws:logs:{region}:{account}:log-group:{name}[:*], or the delivery
// stream of a Firehose ARN (and the "/Canary" group of canary stages). The
// same destinations form a reverse index, so records that carry no API id
// and stage of their own (custom access-log formats) find their stage from
// their log group.
//
// # Normalisation
//
// AWS tags become Datadog tags the way the Datadog Forwarder does it
// (docs/wire-formats.md#datadog-tags-for-api-gateway): the key has ':' replaced by '_', is lower-cased, has every
// character other than letters, digits and "_-./:" replaced by '_', runs of
// '_' collapsed, leading '_' and digits and trailing '_' removed; the value
// likewise but keeps ':' and leading digits and '_'; "key:value" (just
// "key" for an empty value) is cut to 200 characters. Unlike the Forwarder,
// a tag whose key normalises to nothing (e.g. "123") is dropped rather than
// sent as ":value". apiname and stage values are normalised the same way
// ("$default" becomes "_default").
//
// # Testing against moto
//
// The tagging client speaks AWS JSON 1.1 (X-Amz-Target
// ResourceGroupsTaggingAPI_20170126.GetResources), the protocol the API
// documents: since v1.42.0 the SDK would default to Smithy RPCv2 CBOR,
// which AWS also serves but emulators and some proxies do not.
//
// The tests run moto_server (STS, API Gateway v1 and v2) on 127.0.0.1.
// moto keeps each account's resources apart by the caller's access key, so
// reading the right APIs proves each account is read with its own assumed
// credentials. Two gaps of moto shape the tests: its tagging API returns no
// API Gateway resources, and GetTags on a stage ARN fails (this package
// never calls GetTags). GetRestApis, GetStages and their v2 equivalents
// carry tags and accessLogSettings in moto as in AWS. tag:GetResources is
// therefore also tested against a recorded-response fake speaking the JSON
// 1.1 protocol, which checks the credentials each call is signed with and
// can answer ThrottledException.
package awstags
