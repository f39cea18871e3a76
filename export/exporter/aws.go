package exporter

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/awsmp"
)

// NewAWSSender builds the sender of productCode in region ("" = the SDK's
// default chain) with the credentials of account a: the base credentials
// of its profile, or of the SDK's default chain (environment, shared
// files, instance or task role); then, if it names a role, the role's,
// assumed with STS AssumeRole (with its external id) and renewed before
// they expire. Requests go to the account's endpoints, or AWS's. Nothing
// of a destination but its product code and region is used: where
// requests go and how they are signed is the operator's to say.
func NewAWSSender(ctx context.Context, a *export.Account, productCode, region string) (*awsmp.Sender, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if a.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(a.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if a.RoleARN != "" {
		client := sts.NewFromConfig(cfg, func(o *sts.Options) {
			if a.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(a.STSEndpoint)
			}
		})
		role := stscreds.NewAssumeRoleProvider(client, a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			// The session name shows in the role's CloudTrail entries.
			o.RoleSessionName = "odometer-" + a.Name
			if a.ExternalID != "" {
				o.ExternalID = aws.String(a.ExternalID)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(role)
	}
	return awsmp.New(cfg, productCode, a.Endpoint), nil
}
