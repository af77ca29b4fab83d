package loadgen

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// The universe is the fixed set of accounts, APIs, stages, routes and clients
// that traffic is drawn from. It depends only on Seed, Accounts, APIs and
// Stages, so changing packing or the mix does not change it.

var (
	regionPool = []string{
		"us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-2",
		"ap-northeast-1", "us-east-2", "eu-west-2", "sa-east-1", "ca-central-1",
	}
	apiNamePool = []string{
		"petstore", "orders", "payments", "inventory", "users", "auth", "search",
		"catalog", "notifications", "billing", "shipping", "reviews", "checkout",
		"profiles", "media", "analytics",
	}
	stagePool = []string{"prod", "dev", "staging", "test", "beta", "qa", "sandbox", "v1", "v2", "canary"}

	// routePool is "METHOD /resource/{param}".
	routePool = []string{
		"GET /pets", "POST /pets", "GET /pets/{petId}", "PUT /pets/{petId}", "DELETE /pets/{petId}",
		"GET /orders", "POST /orders", "GET /orders/{id}", "GET /orders/{id}/items", "POST /orders/{id}/items",
		"GET /users/{userId}", "PATCH /users/{userId}", "GET /users/{userId}/orders",
		"GET /health", "GET /search", "POST /auth/token", "GET /catalog/{category}/products",
		"GET /products/{productId}/reviews", "POST /webhooks/{provider}", "OPTIONS /pets", "GET /",
	}

	userAgentPool = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
		"curl/7.88.1",
		"okhttp/4.12.0",
		"python-requests/2.31.0",
		"aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64",
		"PostmanRuntime/7.36.0",
		"Go-http-client/1.1",
		"axios/1.6.2",
		"Amazon CloudFront",
		"Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12.1",
	}
	categoryPool = []string{"dogs", "cats", "fish", "birds", "reptiles"}
	providerPool = []string{"stripe", "github", "slack", "twilio"}
)

type account struct {
	id         string
	region     string
	accountPol bool  // subscribed through an account-level policy (policyLevel field)
	apis       []int // indexes into universe.apis
	apiWeights []float64
	arn        string // delivery stream ARN for CloudWatch-subscription traffic
}

type api struct {
	id, name   string
	acct       int
	account    string // account id
	region     string
	keyed      bool     // requires an API key (usage-plan throttling applies)
	keys       []string // masked API keys, "**********" + 6 chars
	usagePlan  string
	timeoutMs  int
	routes     []route
	routeW     []float64
	stages     []*stage
	stageW     []float64
	host       string // {id}.execute-api.{region}.amazonaws.com
	lambdaBase string // https://lambda.{region}.amazonaws.com/2015-03-31/functions/arn:aws:lambda:{region}:{acct}:function:{name}-
}

type stage struct {
	name          string
	execGroup     string // API-Gateway-Execution-Logs_{apiId}/{stage}
	accessGroup   string // /aws/api-gateway/{apiId}/{stage}
	execStreams   []*logStream
	accessStreams []*logStream
	directStream  string // amazon-apigateway-{apiName}-{stage}
	directARN     string
	lambdaURI     string // full Lambda invocation URI
	sourceARN     string // arn:aws:execute-api:{region}:{acct}:{apiId}/{stage}
	token         string // X-Amz-Security-Token (static per stage)
}

// logStream is one CloudWatch log stream; pending holds execution-log lines
// of a request whose sequence did not fit in the previous envelope.
type logStream struct {
	name    string
	pending []Event
}

type segment struct {
	lit   string // literal path segment, or
	param string // parameter name
}

type route struct {
	method, resource string
	resourceID       string // 6-char API Gateway resource id
	segs             []segment
	hasBody          bool
	hasQuery         bool
}

type client struct {
	ip, ua string
}

type universe struct {
	accounts []*account
	apis     []*api
	clients  []client
	callers  []string // IAM principal ids for $context.identity.caller/user
}

// zipf returns weights 1/(i+1)^s for n items.
func zipf(n int, s float64) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1 / math.Pow(float64(i+1), s)
	}
	return w
}

// cumulative turns weights into a cumulative table for pick.
func cumulative(w []float64) []float64 {
	c := make([]float64, len(w))
	sum := 0.0
	for i, x := range w {
		sum += x
		c[i] = sum
	}
	return c
}

// pick draws an index from a cumulative weight table.
func pick(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	lo, hi := 0, len(cum)-1
	for lo < hi {
		m := (lo + hi) / 2
		if cum[m] > x {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

func randString(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func newUniverse(cfg Config) *universe {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15))
	u := &universe{}
	ids := map[string]bool{}
	unique := func(gen func() string) string {
		for {
			s := gen()
			if !ids[s] {
				ids[s] = true
				return s
			}
		}
	}
	for i := 0; i < cfg.Accounts; i++ {
		a := &account{
			id:         unique(func() string { return strconv.Itoa(1+r.IntN(9)) + randString(r, "0123456789", 11) }),
			region:     regionPool[i%len(regionPool)],
			accountPol: i%2 == 1,
		}
		a.arn = "arn:aws:firehose:" + a.region + ":" + a.id + ":deliverystream/" + cfg.StreamName
		u.accounts = append(u.accounts, a)
	}
	names := map[string]int{}
	stageNames := make([]string, cfg.Stages)
	for i := range stageNames {
		if i < len(stagePool) {
			stageNames[i] = stagePool[i]
		} else {
			stageNames[i] = "stage" + strconv.Itoa(i+1)
		}
	}
	stageW := cumulative(zipf(cfg.Stages, 1.5))
	for i := 0; i < cfg.APIs; i++ {
		acct := i % cfg.Accounts // every account gets at least one API
		a := u.accounts[acct]
		name := apiNamePool[r.IntN(len(apiNamePool))]
		names[name]++
		if n := names[name]; n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		p := &api{
			id:        unique(func() string { return randString(r, lowerAlnum, 10) }),
			name:      name,
			acct:      acct,
			account:   a.id,
			region:    a.region,
			keyed:     r.IntN(3) > 0,
			usagePlan: randString(r, lowerAlnum, 6),
			timeoutMs: []int{29000, 29000, 10000, 5000}[r.IntN(4)],
			stageW:    stageW,
		}
		for k := 0; k < 3; k++ {
			p.keys = append(p.keys, "**********"+randString(r, mixedAlnum, 6))
		}
		p.host = p.id + ".execute-api." + p.region + ".amazonaws.com"
		p.lambdaBase = "https://lambda." + p.region + ".amazonaws.com/2015-03-31/functions/arn:aws:lambda:" +
			p.region + ":" + p.account + ":function:" + p.name + "-"
		nr := 5 + r.IntN(6)
		for _, k := range r.Perm(len(routePool))[:nr] {
			p.routes = append(p.routes, newRoute(r, routePool[k]))
		}
		p.routeW = cumulative(zipf(nr, 1.1))
		for _, sn := range stageNames {
			s := &stage{
				name:         sn,
				execGroup:    "API-Gateway-Execution-Logs_" + p.id + "/" + sn,
				accessGroup:  "/aws/api-gateway/" + p.id + "/" + sn,
				directStream: "amazon-apigateway-" + p.name + "-" + sn,
				sourceARN:    "arn:aws:execute-api:" + p.region + ":" + p.account + ":" + p.id + "/" + sn,
				token:        "IQoJb3JpZ2luX2VjE" + randString(r, mixedAlnum+"+/", 700) + "==",
			}
			s.directARN = "arn:aws:firehose:" + p.region + ":" + p.account + ":deliverystream/" + s.directStream
			s.lambdaURI = p.lambdaBase + sn + "/invocations"
			for k := 0; k < 3; k++ {
				s.execStreams = append(s.execStreams, &logStream{name: unique(func() string { return randString(r, hexDigits, 32) })})
			}
			for k := 0; k < 2; k++ {
				s.accessStreams = append(s.accessStreams, &logStream{name: unique(func() string { return randString(r, hexDigits, 32) })})
			}
			p.stages = append(p.stages, s)
		}
		u.apis = append(u.apis, p)
		a.apis = append(a.apis, i)
	}
	for _, a := range u.accounts {
		a.apiWeights = cumulative(zipf(len(a.apis), 0.8))
	}
	for i := 0; i < 8; i++ {
		u.callers = append(u.callers, "AIDA"+randString(r, upperAlnum, 17))
	}
	for i := 0; i < 512; i++ {
		u.clients = append(u.clients, client{ip: randomIP(r), ua: userAgentPool[pick(r, uaWeights)]})
	}
	return u
}

var uaWeights = cumulative(zipf(len(userAgentPool), 0.7))

func newRoute(r *rand.Rand, spec string) route {
	method, res, _ := strings.Cut(spec, " ")
	rt := route{
		method:     method,
		resource:   res,
		resourceID: randString(r, lowerAlnum, 6),
		hasBody:    method == "POST" || method == "PUT" || method == "PATCH",
		hasQuery:   method == "GET" && (res == "/pets" || res == "/orders" || res == "/search" || strings.HasSuffix(res, "/products")),
	}
	for seg := range strings.SplitSeq(strings.TrimPrefix(res, "/"), "/") {
		if seg == "" {
			continue
		}
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			rt.segs = append(rt.segs, segment{param: seg[1 : len(seg)-1]})
		} else {
			rt.segs = append(rt.segs, segment{lit: seg})
		}
	}
	return rt
}

// randomIP returns a public-looking client address, sometimes IPv6.
func randomIP(r *rand.Rand) string {
	if r.IntN(20) == 0 {
		b := []byte("2001:db8:")
		b = appendHex(b, r.Uint64(), 4)
		b = append(b, ':')
		b = appendHex(b, r.Uint64(), 4)
		b = append(b, "::"...)
		b = appendHex(b, r.Uint64(), 3)
		return string(b)
	}
	for {
		a := 1 + r.IntN(223)
		if a == 10 || a == 127 || a == 172 || a == 192 || a == 100 || a == 169 {
			continue
		}
		return strconv.Itoa(a) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
	}
}
