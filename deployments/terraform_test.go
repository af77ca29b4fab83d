package deployments

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

const tfDir = "aws/terraform"

// tfModule is one Terraform module directory, parsed with HCL.
type tfModule struct {
	dir        string
	blocks     []*hclsyntax.Block // top-level blocks of every file
	variables  map[string]*hclsyntax.Block
	locals     map[string]*hclsyntax.Attribute
	resources  map[string]*hclsyntax.Block // "type.name"
	data       map[string]*hclsyntax.Block // "type.name"
	modules    map[string]*hclsyntax.Block
	outputs    map[string]*hclsyntax.Block
	aliases    map[string]bool // "aws.prod"
	providers  map[string]bool // required_providers names
	varsUsed   map[string]bool
	defaultCtx *hcl.EvalContext
}

var tfModules = map[string]*tfModule{}

func loadModule(t *testing.T, dir string) *tfModule {
	t.Helper()
	dir = filepath.Clean(dir)
	if m, ok := tfModules[dir]; ok {
		return m
	}
	m := &tfModule{dir: dir, variables: map[string]*hclsyntax.Block{}, locals: map[string]*hclsyntax.Attribute{},
		resources: map[string]*hclsyntax.Block{}, data: map[string]*hclsyntax.Block{}, modules: map[string]*hclsyntax.Block{},
		outputs: map[string]*hclsyntax.Block{}, aliases: map[string]bool{}, providers: map[string]bool{}, varsUsed: map[string]bool{}}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	if len(paths) == 0 {
		t.Fatalf("%s: no .tf files", dir)
	}
	p := hclparse.NewParser()
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Errorf("%s", diags.Error())
			continue
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			m.blocks = append(m.blocks, b)
			key := strings.Join(b.Labels, ".")
			dup := func(seen bool) {
				if seen {
					t.Errorf("%s: %s %s declared twice", dir, b.Type, key)
				}
			}
			switch b.Type {
			case "variable":
				_, seen := m.variables[key]
				dup(seen)
				m.variables[key] = b
			case "locals":
				for name, a := range b.Body.Attributes {
					_, seen := m.locals[name]
					dup(seen)
					m.locals[name] = a
				}
			case "resource":
				_, seen := m.resources[key]
				dup(seen)
				m.resources[key] = b
			case "data":
				_, seen := m.data[key]
				dup(seen)
				m.data[key] = b
			case "module":
				_, seen := m.modules[key]
				dup(seen)
				m.modules[key] = b
			case "output":
				_, seen := m.outputs[key]
				dup(seen)
				m.outputs[key] = b
			case "provider":
				if a, ok := b.Body.Attributes["alias"]; ok {
					v, _ := a.Expr.Value(nil)
					m.aliases[b.Labels[0]+"."+v.AsString()] = true
				}
			case "terraform":
				for _, tb := range b.Body.Blocks {
					if tb.Type == "required_providers" {
						for name := range tb.Body.Attributes {
							m.providers[name] = true
						}
					}
				}
			default:
				t.Errorf("%s: unexpected top-level block %s", dir, b.Type)
			}
		}
	}
	// Variable defaults, to evaluate settings that come from variables.
	vars := map[string]cty.Value{}
	for name, b := range m.variables {
		if a, ok := b.Body.Attributes["default"]; ok {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() {
				vars[name] = v
			}
		}
	}
	m.defaultCtx = &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}}
	tfModules[dir] = m
	return m
}

func tfModuleDirs(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range files(t, tfDir, ".tf") {
		seen[filepath.Dir(f)] = true
	}
	return sortedKeys(seen)
}

// TestTerraformParses parses every .tf file and checks every module.
func TestTerraformParses(t *testing.T) {
	for _, dir := range tfModuleDirs(t) {
		m := loadModule(t, dir)
		if !m.providers["aws"] {
			t.Errorf("%s: required_providers does not declare aws", dir)
		}
		checkReferences(t, m)
		for name, b := range m.variables {
			if _, ok := b.Body.Attributes["description"]; !ok {
				t.Errorf("%s: variable %s has no description", dir, name)
			}
			if _, ok := b.Body.Attributes["type"]; !ok {
				t.Errorf("%s: variable %s has no type", dir, name)
			}
			if !m.varsUsed[name] {
				t.Errorf("%s: variable %s is declared but never used", dir, name)
			}
			for _, vb := range b.Body.Blocks {
				if vb.Type != "validation" {
					continue
				}
				// Before Terraform 1.9 a validation may only refer to its own variable.
				for _, tr := range vb.Body.Attributes["condition"].Expr.Variables() {
					if tr.RootName() != "var" || attrName(tr, 1) != name {
						t.Errorf("%s: validation of %s refers to %s", dir, name, traversalString(tr))
					}
				}
			}
		}
		for name, b := range m.outputs {
			if _, ok := b.Body.Attributes["description"]; !ok {
				t.Errorf("%s: output %s has no description", dir, name)
			}
		}
		for name, b := range m.modules {
			checkModuleCall(t, m, name, b)
		}
	}
}

// checkReferences resolves every reference of every expression.
func checkReferences(t *testing.T, m *tfModule) {
	t.Helper()
	for _, b := range m.blocks {
		var scope []string
		walkBlock(t, m, b, scope)
	}
	for name, a := range m.locals {
		checkTraversals(t, m, "local "+name, a.Expr.Variables(), nil)
	}
}

func walkBlock(t *testing.T, m *tfModule, b *hclsyntax.Block, scope []string) {
	t.Helper()
	if b.Type == "locals" {
		return // checked with m.locals
	}
	where := b.Type + " " + strings.Join(b.Labels, ".")
	if b.Type == "dynamic" {
		it := b.Labels[0]
		if a, ok := b.Body.Attributes["iterator"]; ok {
			it = hcl.ExprAsKeyword(a.Expr)
		}
		if a, ok := b.Body.Attributes["for_each"]; ok {
			checkTraversals(t, m, where, a.Expr.Variables(), scope)
		}
		scope = append(slices.Clone(scope), it)
	}
	for name, a := range b.Body.Attributes {
		switch {
		case b.Type == "module" && name == "providers", b.Type != "module" && name == "provider":
			checkProviderRefs(t, m, where, a.Expr)
			continue
		case b.Type == "variable" && name == "type":
			continue
		case b.Type == "variable" && name == "default":
			continue
		}
		checkTraversals(t, m, where+"."+name, a.Expr.Variables(), scope)
	}
	for _, nb := range b.Body.Blocks {
		if b.Type == "variable" && nb.Type == "validation" {
			for _, tr := range nb.Body.Attributes["condition"].Expr.Variables() {
				markVar(m, tr)
			}
			continue
		}
		walkBlock(t, m, nb, scope)
	}
}

func markVar(m *tfModule, tr hcl.Traversal) {
	if tr.RootName() == "var" {
		m.varsUsed[attrName(tr, 1)] = true
	}
}

func checkTraversals(t *testing.T, m *tfModule, where string, trs []hcl.Traversal, scope []string) {
	t.Helper()
	for _, tr := range trs {
		root := tr.RootName()
		name := attrName(tr, 1)
		ok := true
		switch root {
		case "var":
			_, ok = m.variables[name]
			m.varsUsed[name] = true
		case "local":
			_, ok = m.locals[name]
		case "module":
			var b *hclsyntax.Block
			b, ok = m.modules[name]
			if ok && len(tr) > 2 {
				if callee := calleeModule(t, m, b); callee != nil {
					out := attrName(tr, 2)
					if _, has := callee.outputs[out]; !has && out != "" {
						t.Errorf("%s: %s: module %s has no output %s", m.dir, where, name, out)
					}
				}
			}
		case "data":
			_, ok = m.data[name+"."+attrName(tr, 2)]
		case "each", "count", "self", "path", "terraform":
		default:
			if slices.Contains(scope, root) {
				continue
			}
			if !strings.Contains(root, "_") {
				ok = false
			} else {
				_, ok = m.resources[root+"."+name]
			}
		}
		if !ok {
			t.Errorf("%s: %s refers to undeclared %s", m.dir, where, traversalString(tr))
		}
	}
}

func checkProviderRefs(t *testing.T, m *tfModule, where string, expr hclsyntax.Expression) {
	t.Helper()
	for _, tr := range expr.Variables() {
		ref := tr.RootName() + "." + attrName(tr, 1)
		if !m.aliases[ref] {
			t.Errorf("%s: %s uses provider %s, which is not configured", m.dir, where, ref)
		}
	}
}

func attrName(tr hcl.Traversal, i int) string {
	if i >= len(tr) {
		return ""
	}
	switch s := tr[i].(type) {
	case hcl.TraverseAttr:
		return s.Name
	case hcl.TraverseRoot:
		return s.Name
	}
	return ""
}

func traversalString(tr hcl.Traversal) string {
	var parts []string
	for i := range tr {
		if n := attrName(tr, i); n != "" {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, ".")
}

func calleeModule(t *testing.T, m *tfModule, b *hclsyntax.Block) *tfModule {
	t.Helper()
	a, ok := b.Body.Attributes["source"]
	if !ok {
		t.Errorf("%s: module %s has no source", m.dir, b.Labels[0])
		return nil
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || !strings.HasPrefix(v.AsString(), ".") {
		return nil // registry modules are not checked here
	}
	dir := filepath.Join(m.dir, v.AsString())
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Errorf("%s: module %s: source %s is not a directory", m.dir, b.Labels[0], v.AsString())
		return nil
	}
	return loadModule(t, dir)
}

// checkModuleCall: arguments are the callee's variables, required ones given.
func checkModuleCall(t *testing.T, m *tfModule, name string, b *hclsyntax.Block) {
	t.Helper()
	callee := calleeModule(t, m, b)
	if callee == nil {
		return
	}
	meta := []string{"source", "version", "providers", "count", "for_each", "depends_on"}
	for arg := range b.Body.Attributes {
		if slices.Contains(meta, arg) {
			continue
		}
		if _, ok := callee.variables[arg]; !ok {
			t.Errorf("%s: module %s passes %s, which %s does not declare", m.dir, name, arg, callee.dir)
		}
	}
	for v, vb := range callee.variables {
		if _, hasDefault := vb.Body.Attributes["default"]; !hasDefault {
			if _, passed := b.Body.Attributes[v]; !passed {
				t.Errorf("%s: module %s does not pass required variable %s", m.dir, name, v)
			}
		}
	}
	if len(m.aliases) > 0 {
		if _, ok := b.Body.Attributes["providers"]; !ok {
			t.Errorf("%s: module %s does not say which account (providers = { aws = aws.<alias> })", m.dir, name)
		}
	}
}

// block finds a nested block by type path.
func block(b *hclsyntax.Block, path ...string) *hclsyntax.Block {
	for _, typ := range path {
		var next *hclsyntax.Block
		for _, nb := range b.Body.Blocks {
			if nb.Type == typ {
				next = nb
				break
			}
		}
		if next == nil {
			return nil
		}
		b = next
	}
	return b
}

// eval evaluates an attribute with the module's variable defaults.
func eval(t *testing.T, m *tfModule, b *hclsyntax.Block, attr string) cty.Value {
	t.Helper()
	if b == nil {
		t.Errorf("%s: missing block for %s", m.dir, attr)
		return cty.NilVal
	}
	a, ok := b.Body.Attributes[attr]
	if !ok {
		t.Errorf("%s: %s %s: no %s", m.dir, b.Type, strings.Join(b.Labels, "."), attr)
		return cty.NilVal
	}
	v, diags := a.Expr.Value(m.defaultCtx)
	if diags.HasErrors() {
		t.Errorf("%s: %s: %s", m.dir, attr, diags.Error())
		return cty.NilVal
	}
	return v
}

func refersTo(b *hclsyntax.Block, attr, prefix string) bool {
	a, ok := b.Body.Attributes[attr]
	if !ok {
		return false
	}
	for _, tr := range a.Expr.Variables() {
		if strings.HasPrefix(traversalString(tr), prefix) {
			return true
		}
	}
	return false
}

// policyActions lists the actions of an aws_iam_policy_document's statements.
func policyActions(t *testing.T, m *tfModule, doc *hclsyntax.Block) []string {
	t.Helper()
	var out []string
	for _, st := range doc.Body.Blocks {
		if st.Type != "statement" {
			continue
		}
		v := eval(t, m, st, "actions")
		if v == cty.NilVal {
			continue
		}
		for it := v.ElementIterator(); it.Next(); {
			_, a := it.Element()
			out = append(out, a.AsString())
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestTerraformFirehose(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "modules", "source-account"))
	fh := m.resources["aws_kinesis_firehose_delivery_stream.this"]
	if fh == nil {
		t.Fatal("no Firehose delivery stream")
	}
	if v := eval(t, m, fh, "destination"); v != cty.StringVal("http_endpoint") {
		t.Errorf("destination %#v, want http_endpoint", v)
	}
	h := block(fh, "http_endpoint_configuration")
	if h == nil {
		t.Fatal("no http_endpoint_configuration")
	}
	for attr, want := range map[string]cty.Value{
		"buffering_size":     cty.NumberIntVal(4),
		"buffering_interval": cty.NumberIntVal(60),
		"retry_duration":     cty.NumberIntVal(3600),
		"s3_backup_mode":     cty.StringVal("FailedDataOnly"),
	} {
		if v := eval(t, m, h, attr); !v.RawEquals(want) {
			t.Errorf("http_endpoint_configuration.%s = %#v, want %#v", attr, v, want)
		}
	}
	if !refersTo(h, "url", "var.endpoint_url") || !refersTo(h, "access_key", "var.access_key") {
		t.Error("the endpoint URL and access key must come from variables")
	}
	if v := eval(t, m, block(h, "request_configuration"), "content_encoding"); v != cty.StringVal("GZIP") {
		t.Errorf("content_encoding %#v, want GZIP", v)
	}
	if s3 := block(h, "s3_configuration"); s3 == nil || !refersTo(s3, "bucket_arn", "var.backup_bucket_arn") {
		t.Error("the S3 backup must go to var.backup_bucket_arn")
	}
	// The modes Firehose accepts, and only those.
	checkValidation(t, m, "s3_backup_mode", map[string]bool{"FailedDataOnly": true, "AllData": true, "Enabled": false})
	checkValidation(t, m, "endpoint_url", map[string]bool{
		"https://firehose.example.com/": true, "https://firehose.example.com:443/": true, "https://firehose.example.com": true,
		"http://firehose.example.com/": false, "https://firehose.example.com:8443/": false,
	})

	sub := m.resources["aws_cloudwatch_log_subscription_filter.this"]
	if sub == nil || !refersTo(sub, "destination_arn", "aws_kinesis_firehose_delivery_stream.this") || !refersTo(sub, "role_arn", "aws_iam_role.cloudwatch_logs") {
		t.Error("the subscription filters must send to the stream with the CloudWatch Logs role")
	}
	prefixes := eval(t, m, m.variables["log_group_prefixes"], "default")
	if prefixes == cty.NilVal || !prefixes.IsKnown() || !slices.ContainsFunc(prefixes.AsValueSlice(), func(v cty.Value) bool { return v.AsString() == "API-Gateway-Execution-Logs_" }) {
		t.Error("execution log groups (API-Gateway-Execution-Logs_) must be subscribed by default")
	}
	if got := policyActions(t, m, m.data["aws_iam_policy_document.cloudwatch_logs"]); !slices.Equal(got, []string{"firehose:PutRecord", "firehose:PutRecordBatch"}) {
		t.Errorf("CloudWatch Logs role actions %v", got)
	}
	if p := block(m.data["aws_iam_policy_document.cloudwatch_logs_trust"], "statement", "principals"); p == nil || !strings.Contains(eval(t, m, p, "identifiers").GoString(), "logs.amazonaws.com") {
		t.Error("the CloudWatch Logs role must trust logs.amazonaws.com")
	}
	if p := block(m.data["aws_iam_policy_document.firehose_trust"], "statement", "principals"); p == nil || !strings.Contains(eval(t, m, p, "identifiers").GoString(), "firehose.amazonaws.com") {
		t.Error("the Firehose role must trust firehose.amazonaws.com")
	}
}

// checkValidation evaluates a variable's validation conditions on values.
func checkValidation(t *testing.T, m *tfModule, name string, cases map[string]bool) {
	t.Helper()
	vb := m.variables[name]
	if vb == nil {
		t.Fatalf("%s: no variable %s", m.dir, name)
	}
	for value, want := range cases {
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: cty.StringVal(value)})},
			Functions: tfFunctions(),
		}
		ok := true
		for _, b := range vb.Body.Blocks {
			if b.Type != "validation" {
				continue
			}
			v, diags := b.Body.Attributes["condition"].Expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("%s: validation of %s: %s", m.dir, name, diags.Error())
			}
			ok = ok && v.True()
		}
		if ok != want {
			t.Errorf("%s: variable %s = %q: valid %v, want %v", m.dir, name, value, ok, want)
		}
	}
}

func TestTerraformReaderRole(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "modules", "reader-role"))
	if got := eval(t, m, m.variables["role_name"], "default"); got != cty.StringVal("gwpipe-reader") {
		t.Errorf("role name %#v, want gwpipe-reader", got)
	}
	if got := policyActions(t, m, m.data["aws_iam_policy_document.read_tags"]); !slices.Equal(got, []string{"apigateway:GET", "tag:GetResources"}) {
		t.Errorf("reader permissions %v: only apigateway:GET and tag:GetResources", got)
	}
	trust := m.data["aws_iam_policy_document.trust"]
	if got := policyActions(t, m, trust); !slices.Equal(got, []string{"sts:AssumeRole"}) {
		t.Errorf("trust actions %v", got)
	}
	st := block(trust, "statement")
	if p := block(st, "principals"); p == nil || !refersTo(p, "identifiers", "var.pipeline_role_arn") {
		t.Error("the reader role must trust the pipeline role only")
	}
	if c := block(st, "condition"); c == nil || eval(t, m, c, "variable") != cty.StringVal("sts:ExternalId") || !refersTo(c, "values", "var.external_id") {
		t.Error("the reader role must require the external id")
	}
}

func TestTerraformArchive(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "modules", "archive"))
	q := m.resources["aws_sqs_queue.notifications"]
	if q == nil || !refersTo(q, "redrive_policy", "aws_sqs_queue.notifications_dlq") || !refersTo(q, "redrive_policy", "var.max_receive_count") {
		t.Error("the notification queue needs a redrive policy to its dead-letter queue")
	}
	n := m.resources["aws_s3_bucket_notification.archive"]
	qb := block(n, "queue")
	if qb == nil || !refersTo(qb, "queue_arn", "aws_sqs_queue.notifications") || !strings.Contains(eval(t, m, qb, "events").GoString(), "s3:ObjectCreated:*") {
		t.Error("the bucket must notify the queue of created objects")
	}
	if !refersTo(m.resources["aws_sqs_queue_policy.notifications"], "policy", "data.aws_iam_policy_document.notifications") {
		t.Error("the queue policy must admit S3")
	}
}

func TestTerraformPipelineRole(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "modules", "pipeline-role"))
	trust := m.data["aws_iam_policy_document.trust"]
	if got := eval(t, m, block(trust, "statement"), "actions"); !strings.Contains(got.GoString(), "sts:AssumeRoleWithWebIdentity") {
		t.Error("the pipeline role must be assumable through IRSA")
	}
	perms := m.data["aws_iam_policy_document.pipeline"]
	st := block(perms, "statement")
	if st == nil || !eval(t, m, st, "actions").RawEquals(cty.TupleVal([]cty.Value{cty.StringVal("sts:AssumeRole")})) || !refersTo(st, "resources", "var.reader_role_name") {
		t.Error("the pipeline role must assume the reader roles")
	}
}

// dynamicStatement finds the content of a policy document's dynamic
// statement by its sid.
func dynamicStatement(t *testing.T, m *tfModule, doc *hclsyntax.Block, sid string) *hclsyntax.Block {
	t.Helper()
	for _, b := range doc.Body.Blocks {
		if b.Type != "dynamic" || len(b.Labels) != 1 || b.Labels[0] != "statement" {
			continue
		}
		c := block(b, "content")
		if c == nil {
			continue
		}
		if a, ok := c.Body.Attributes["sid"]; ok {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() && v.AsString() == sid {
				return c
			}
		}
	}
	t.Errorf("%s: no statement %s", m.dir, sid)
	return nil
}

// The state the fleet shares: workers read and write objects under the
// state prefixes only (conditional writes need nothing beyond
// s3:PutObject), and list them, so that a missing key answers 404 rather
// than 403 (how a first lease or checkpoint is told from a refusal).
func TestTerraformPipelineRoleState(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "modules", "pipeline-role"))
	perms := m.data["aws_iam_policy_document.pipeline"]
	objects := dynamicStatement(t, m, perms, "StateObjects")
	if objects == nil {
		return
	}
	if got := eval(t, m, objects, "actions"); !got.RawEquals(cty.TupleVal([]cty.Value{cty.StringVal("s3:GetObject"), cty.StringVal("s3:PutObject")})) {
		t.Errorf("StateObjects grants %s, want s3:GetObject and s3:PutObject only", got.GoString())
	}
	if !refersTo(objects, "resources", "var.state_prefixes") {
		t.Error("StateObjects must be limited to the state prefixes")
	}
	list := dynamicStatement(t, m, perms, "StateList")
	if list == nil {
		return
	}
	if got := eval(t, m, list, "actions"); !got.RawEquals(cty.TupleVal([]cty.Value{cty.StringVal("s3:ListBucket")})) {
		t.Errorf("StateList grants %s", got.GoString())
	}
	cond := block(list, "condition")
	if cond == nil || !refersTo(cond, "values", "var.state_prefixes") || eval(t, m, cond, "variable").AsString() != "s3:prefix" {
		t.Error("StateList must be conditioned on s3:prefix of the state prefixes")
	}
	for _, sid := range []string{"StateObjects", "StateList"} {
		for _, b := range perms.Body.Blocks {
			if b.Type == "dynamic" && block(b, "content") == dynamicStatement(t, m, perms, sid) && !refersTo(b, "for_each", "var.state_bucket_arn") {
				t.Errorf("%s must be granted only with a state bucket", sid)
			}
		}
	}
	var prefixes []string
	for it := eval(t, m, m.variables["state_prefixes"], "default").ElementIterator(); it.Next(); {
		_, v := it.Element()
		prefixes = append(prefixes, v.AsString())
	}
	for _, want := range []string{"dlq/", "replays/", "cwpoller/"} {
		if !slices.Contains(prefixes, want) {
			t.Errorf("state_prefixes default lacks %s", want)
		}
	}
}

func TestTerraformState(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "modules", "state"))
	lc := m.resources["aws_s3_bucket_lifecycle_configuration.state"]
	var dlqRule *hclsyntax.Block
	for _, r := range lc.Body.Blocks {
		if r.Type == "rule" && refersTo(block(r, "filter"), "prefix", "var.dlq_prefix") {
			dlqRule = r
		}
		if r.Type == "rule" && block(r, "expiration") != nil && block(r, "filter") != nil && len(block(r, "filter").Body.Attributes) == 0 {
			t.Error("state must not expire as a whole: leases, checkpoints and the poller's state are rewritten, never recreated")
		}
	}
	if dlqRule == nil || !refersTo(block(dlqRule, "expiration"), "days", "var.dlq_retention_days") {
		t.Error("dead letters expire after dlq_retention_days")
	}
	if m.resources["aws_s3_bucket_public_access_block.state"] == nil || m.resources["aws_s3_bucket_server_side_encryption_configuration.state"] == nil {
		t.Error("the state bucket is private and encrypted")
	}
	if !refersTo(m.outputs["dlq_url"], "value", "var.dlq_prefix") {
		t.Error("dlq_url is s3://<bucket>/<dlq_prefix>")
	}
	ex := loadModule(t, filepath.Join(tfDir, "examples", "two-accounts"))
	role := ex.modules["pipeline_role"]
	if !refersTo(role, "state_bucket_arn", "module.state.bucket_arn") || !refersTo(role, "state_prefixes", "module.state.prefixes") {
		t.Error("the example grants the pipeline role its state bucket")
	}
}

func TestTerraformExample(t *testing.T) {
	m := loadModule(t, filepath.Join(tfDir, "examples", "two-accounts"))
	accounts := map[string]bool{}
	for name, b := range m.modules {
		src := eval(t, m, b, "source").AsString()
		if strings.HasSuffix(src, "/source-account") {
			for _, tr := range b.Body.Attributes["providers"].Expr.Variables() {
				accounts[traversalString(tr)] = true
			}
		}
		_ = name
	}
	if len(accounts) < 2 {
		t.Errorf("the example must wire at least two source accounts through provider aliases, got %v", sortedKeys(accounts))
	}
}

// TestTerraformFmt runs `terraform fmt -check` when terraform is installed
// (it needs no provider and no network).
func TestTerraformFmt(t *testing.T) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform not installed")
	}
	cmd := exec.Command(bin, "fmt", "-check", "-recursive", "-diff", tfDir)
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "CHECKPOINT_DISABLE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("terraform fmt -check: %v\n%s", err, out)
	}
}
