package awstags

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
)

// ProbeStep is one thing Probe checked and its outcome.
type ProbeStep struct {
	What   string // "sts:AssumeRole arn:…", "apigateway:GET", "tag:GetResources"
	Detail string // what it found, when it worked
	Err    error
}

// Probe checks, with the very clients, credentials and role settings the
// Tagger reads tags with, that acct can be read in region: its role is
// assumed (role_template, role_overrides, external_id), or without a role
// the pipeline's own credentials belong to it; then that apigateway:GET
// (one GetRestApis) and tag:GetResources (one GetResources) are allowed.
// An empty account probes the pipeline's own credentials and account.
// Calls are retried as the Tagger's are (a few attempts with back-off).
func (t *Tagger) Probe(ctx context.Context, acct, region string) []ProbeStep {
	var steps []ProbeStep
	if acct == "" {
		own := &account{}
		own.auth.Store(&accountAuth{creds: t.awsCfg.Credentials, clients: map[string]Clients{}})
		self, err := t.selfAccount(ctx, own)
		steps = append(steps, ProbeStep{What: "sts:GetCallerIdentity", Detail: "account " + self, Err: err})
		if err != nil {
			return steps
		}
		acct = self
	}
	a := t.newAccount(acct)
	if au := a.auth.Load(); au.role != "" {
		_, err := au.creds.Retrieve(ctx)
		steps = append(steps, ProbeStep{What: "sts:AssumeRole " + au.role, Detail: "assumed", Err: err})
		if err != nil {
			return steps
		}
	} else if err := t.checkAccount(ctx, a, region); err != nil {
		return append(steps, ProbeStep{What: "own credentials", Err: err})
	}
	c := a.clientsFor(t, region)
	var apis *apigateway.GetRestApisOutput
	err := t.call(ctx, a, region, opGetRestApis, false, func(ctx context.Context) (err error) {
		apis, err = c.APIGateway.GetRestApis(ctx, &apigateway.GetRestApisInput{Limit: aws.Int32(1)})
		return err
	})
	detail := ""
	if err == nil {
		detail = fmt.Sprintf("GetRestApis answered (%d REST API(s) on the first page)", len(apis.Items))
	}
	steps = append(steps, ProbeStep{What: "apigateway:GET", Detail: detail, Err: err})
	var res *resourcegroupstaggingapi.GetResourcesOutput
	err = t.call(ctx, a, region, opGetResources, false, func(ctx context.Context) (err error) {
		res, err = c.Tagging.GetResources(ctx, &resourcegroupstaggingapi.GetResourcesInput{
			ResourceTypeFilters: taggingFilters, ResourcesPerPage: aws.Int32(1),
		})
		return err
	})
	detail = ""
	if err == nil {
		detail = fmt.Sprintf("GetResources answered (%d tagged API Gateway resource(s) on the first page)", len(res.ResourceTagMappingList))
	}
	return append(steps, ProbeStep{What: "tag:GetResources", Detail: detail, Err: err})
}
