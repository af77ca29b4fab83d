package cwpoller

import (
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
)

// RoleCredentials returns a Config.CredentialsFor that reads each account
// through a role assumed with client (the same roles the tag enrichment
// assumes: awstags.Config.RoleFor). roleFor returns the role ARN for an
// account, "" for the pipeline's own credentials. Credentials are cached
// and renewed before they expire.
func RoleCredentials(client stscreds.AssumeRoleAPIClient, roleFor func(account string) string, externalID string) func(account string) aws.CredentialsProvider {
	var (
		mu    sync.Mutex
		cache = map[string]aws.CredentialsProvider{}
	)
	return func(account string) aws.CredentialsProvider {
		role := roleFor(account)
		if role == "" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if p, ok := cache[role]; ok {
			return p
		}
		p := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(client, role, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "gwpipe-cwpoller"
			if externalID != "" {
				o.ExternalID = aws.String(externalID)
			}
		}))
		cache[role] = p
		return p
	}
}
