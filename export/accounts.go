package export

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/odometerhq/odometer"
)

// Who may reach AWS with what (docs/export-aws.md, "AWS accounts and
// grants"). The operator declares AWS accounts in the config file; each
// grants some namespaces some product codes. A destination, made by a
// namespace through the API or by the operator in the config file, names
// one of them. Accounts.Authorize is the one check, made by the API's PUT,
// by the config file's sync and by the exporter at every round, so that a
// grant the operator takes away stops the sending.

// AnyProductCode in an Account's ProductCodes allows every product code.
const AnyProductCode = "*"

// DefaultAccountName is the name of the implicit account of a config file
// that declares none (DefaultAccounts).
const DefaultAccountName = "default"

// Account is an AWS account the operator declares (the config file's
// aws.accounts): the credentials and endpoints requests are sent with, and
// the namespaces and product codes it may be used for.
type Account struct {
	// Name is a slug, unique among the accounts; destinations name it.
	Name string
	// Namespaces may export with the account; at least one.
	Namespaces []string
	// ProductCodes are the product codes those namespaces may meter with
	// it; at least one. AnyProductCode allows any.
	ProductCodes []string
	// Region is the region of its destinations that set none; "" leaves
	// it to the AWS SDK's default chain.
	Region string
	// Profile is the shared config and credentials profile of the base
	// credentials; "" is the SDK's default chain (environment, shared
	// files, instance or task role).
	Profile string
	// RoleARN, when set, is assumed (STS AssumeRole) with the base
	// credentials, and requests are signed with the role's credentials.
	RoleARN string
	// ExternalID goes with RoleARN, as the role's trust policy demands.
	ExternalID string
	// Endpoint replaces the AWS Marketplace Metering endpoint, and
	// STSEndpoint the STS endpoint (tests, private endpoints).
	Endpoint    string
	STSEndpoint string
}

// allows reports whether the account allows productCode.
func (a *Account) allows(productCode string) bool {
	return slices.Contains(a.ProductCodes, AnyProductCode) || slices.Contains(a.ProductCodes, productCode)
}

// DestinationRegion is the region a destination of the account is sent
// to: the destination's own, else the account's, else "" (the SDK's
// default chain).
func (a *Account) DestinationRegion(region string) string {
	if region != "" {
		return region
	}
	return a.Region
}

// Accounts are the operator's AWS accounts, checked (NewAccounts). The
// zero value and nil have no account: every namespace is refused.
type Accounts struct {
	list        []*Account            // by name
	byNamespace map[string][]*Account // by name
}

// DefaultAccounts is what a config file without aws.accounts declares:
// one account named DefaultAccountName with the SDK's default chain, for
// namespace "default" and any product code. So a single-tenant server
// needs no accounts, and every other namespace has no AWS access.
func DefaultAccounts() *Accounts {
	a, err := NewAccounts([]Account{{Name: DefaultAccountName, Namespaces: []string{"default"}, ProductCodes: []string{AnyProductCode}}})
	if err != nil {
		panic(err) // a constant that NewAccounts refuses is a bug
	}
	return a
}

var (
	// regionRE is the form of AWS regions (us-east-1, us-gov-west-1,
	// eu-isoe-west-1). A region ends up in a host name, so nothing else
	// is let through.
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+){1,2}-[0-9]{1,2}$`)
	// roleARNRE is an IAM role's ARN, with an optional path.
	roleARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)
	// externalIDRE is what STS takes as an ExternalId, less its length
	// (2 to 1224).
	externalIDRE = regexp.MustCompile(`^[A-Za-z0-9+=,.@:/_-]+$`)
)

// CheckRegion refuses a region that is not of the AWS form (us-east-1,
// us-gov-west-1); "" is allowed. The reason is meant for a field error.
func CheckRegion(region string) error {
	if region == "" || regionRE.MatchString(region) {
		return nil
	}
	return fmt.Errorf("must be an AWS region such as us-east-1 or us-gov-west-1; got %q", region)
}

// checkURL refuses what is not an absolute http or https URL.
func checkURL(s string) error {
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http or https URL; got %q", s)
	}
	return nil
}

// NewAccounts checks the accounts and returns them. It returns an EINVALID
// *odometer.Error naming every bad field as "accounts[1].namespaces[0]",
// or nil. The rules: a unique slug as name; at least one namespace and at
// least one product code, none empty or listed twice, and AnyProductCode
// alone if at all; a region of the AWS form; a role ARN of the IAM form,
// and an external id or STS endpoint only with it; endpoints as absolute
// http(s) URLs.
func NewAccounts(list []Account) (*Accounts, error) {
	var fields []odometer.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	as := &Accounts{byNamespace: map[string][]*Account{}}
	names := map[string]int{}
	for i, in := range list {
		a := in
		a.Namespaces, a.ProductCodes = slices.Clone(in.Namespaces), slices.Clone(in.ProductCodes)
		f := func(name string) string { return fmt.Sprintf("accounts[%d].%s", i, name) }
		if reason := slugProblem(a.Name); reason != "" {
			bad(f("name"), "%s", reason)
		} else if first, dup := names[a.Name]; dup {
			bad(f("name"), "%q is accounts[%d]'s already", a.Name, first)
		} else {
			names[a.Name] = i
		}
		checkList(bad, f("namespaces"), a.Namespaces, "the namespaces that may export with this account")
		checkList(bad, f("productCodes"), a.ProductCodes, `the product codes they may meter, or "*" for any`)
		for j, p := range a.ProductCodes {
			if len(p) > MaxNameLength {
				bad(fmt.Sprintf("%s[%d]", f("productCodes"), j), "longer than %d characters", MaxNameLength)
			}
		}
		if slices.Contains(a.ProductCodes, AnyProductCode) && len(a.ProductCodes) > 1 {
			bad(f("productCodes"), `"*" allows any product code: list it alone`)
		}
		if err := CheckRegion(a.Region); err != nil {
			bad(f("region"), "%v", err)
		}
		if strings.TrimSpace(a.Profile) != a.Profile || strings.ContainsAny(a.Profile, "[]\n") {
			bad(f("profile"), "must be a profile name of the shared config files; got %q", a.Profile)
		}
		switch {
		case a.RoleARN != "" && !roleARNRE.MatchString(a.RoleARN):
			bad(f("roleArn"), "must be an IAM role ARN such as arn:aws:iam::123456789012:role/odometer; got %q", a.RoleARN)
		case a.RoleARN == "" && a.ExternalID != "":
			bad(f("externalId"), "goes with roleArn only")
		case a.RoleARN == "" && a.STSEndpoint != "":
			bad(f("stsEndpoint"), "goes with roleArn only: STS is called to assume the role")
		case a.ExternalID != "" && (!externalIDRE.MatchString(a.ExternalID) || len(a.ExternalID) < 2 || len(a.ExternalID) > 1224):
			bad(f("externalId"), "must be 2 to 1224 letters, digits or +=,.@:/_-; got %q", a.ExternalID)
		}
		for _, e := range []struct{ name, v string }{{"endpoint", a.Endpoint}, {"stsEndpoint", a.STSEndpoint}} {
			if e.v == "" {
				continue
			}
			if err := checkURL(e.v); err != nil {
				bad(f(e.name), "%v", err)
			}
		}
		as.list = append(as.list, &a)
	}
	if len(fields) > 0 {
		return nil, &odometer.Error{Code: odometer.EINVALID, Message: "invalid AWS accounts", Fields: fields}
	}
	slices.SortFunc(as.list, func(x, y *Account) int { return strings.Compare(x.Name, y.Name) })
	for _, a := range as.list {
		for _, ns := range a.Namespaces {
			as.byNamespace[ns] = append(as.byNamespace[ns], a)
		}
	}
	return as, nil
}

// checkList refuses an empty list, and empty or repeated items.
func checkList(bad func(field, format string, args ...any), field string, items []string, what string) {
	if len(items) == 0 {
		bad(field, "required: list %s", what)
	}
	seen := map[string]int{}
	for j, s := range items {
		item := fmt.Sprintf("%s[%d]", field, j)
		switch first, dup := seen[s]; {
		case strings.TrimSpace(s) == "":
			bad(item, "is empty")
		case strings.TrimSpace(s) != s:
			bad(item, "must not have surrounding spaces; got %q", s)
		case dup:
			bad(item, "%q is %s[%d] already", s, field, first)
		default:
			seen[s] = j
		}
	}
}

// List returns the accounts, ordered by name. They are shared: callers
// must not change them.
func (as *Accounts) List() []*Account {
	if as == nil {
		return nil
	}
	return slices.Clone(as.list)
}

// Authorize returns the account that a destination of namespace, naming
// account ("" for none), may use to meter productCode in region, or an
// error naming the field that is refused:
//   - region not of the AWS form: EINVALID naming region;
//   - no account named, and several granted to the namespace: EINVALID
//     naming account (the destination must name one);
//   - none granted to the namespace, or the one named not granted to it
//     (whether or not it exists, which is not told): EFORBIDDEN naming
//     account;
//   - productCode not allowed by the account: EFORBIDDEN naming
//     productCode.
//
// With no account named, the only one granted to the namespace is used.
// The account returned is shared: callers must not change it.
func (as *Accounts) Authorize(namespace, account, productCode, region string) (*Account, error) {
	if err := CheckRegion(region); err != nil {
		return nil, odometer.FieldErrorf("region", "%v", err)
	}
	var granted []*Account
	if as != nil {
		granted = as.byNamespace[namespace]
	}
	var a *Account
	switch {
	case len(granted) == 0:
		return nil, odometer.ForbiddenFieldf("account", "namespace %q may not export to AWS: the operator has granted it no AWS account "+
			"(aws.accounts in the config file)", namespace)
	case account == "" && len(granted) > 1:
		names := make([]string, len(granted))
		for i, g := range granted {
			names[i] = g.Name
		}
		return nil, odometer.FieldErrorf("account", "required: namespace %q may export with several AWS accounts (%s); name one",
			namespace, strings.Join(names, ", "))
	case account == "":
		a = granted[0]
	default:
		i := slices.IndexFunc(granted, func(g *Account) bool { return g.Name == account })
		if i < 0 {
			return nil, odometer.ForbiddenFieldf("account", "namespace %q may not export with AWS account %q", namespace, account)
		}
		a = granted[i]
	}
	if !a.allows(productCode) {
		return nil, odometer.ForbiddenFieldf("productCode", "AWS account %q does not allow product code %q for namespace %q "+
			"(allowed: %s)", a.Name, productCode, namespace, strings.Join(a.ProductCodes, ", "))
	}
	return a, nil
}
