package export

import (
	"strings"
	"testing"

	"github.com/odometerhq/odometer"
)

func testAccounts(t *testing.T) *Accounts {
	t.Helper()
	as, err := NewAccounts([]Account{
		{Name: "main", Namespaces: []string{"default", "tenant-a"}, ProductCodes: []string{"prod-1", "prod-2"}, Region: "us-east-1"},
		{Name: "a-role", Namespaces: []string{"tenant-a"}, ProductCodes: []string{AnyProductCode},
			RoleARN: "arn:aws:iam::123456789012:role/odometer/tenant-a", ExternalID: "tenant-a"},
		{Name: "b", Namespaces: []string{"tenant-b"}, ProductCodes: []string{"prod-b"}},
		{Name: "unused", Namespaces: []string{"nobody"}, ProductCodes: []string{"prod-x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	as := testAccounts(t)
	for _, tc := range []struct {
		ns, account, product, region string
		want                         string // the account, or the error's code and field
		reason                       string // a substring of the error's reason
	}{
		{"tenant-b", "", "prod-b", "", "b", ""}, // the only one granted
		{"tenant-b", "b", "prod-b", "eu-west-1", "b", ""},
		{"default", "", "prod-2", "", "main", ""},
		{"tenant-a", "a-role", "anything", "", "a-role", ""},
		{"tenant-a", "main", "prod-1", "us-gov-west-1", "main", ""},
		{"tenant-a", "", "prod-1", "", "invalid account", "several AWS accounts (a-role, main); name one"},
		{"tenant-c", "", "prod-1", "", "forbidden account", `namespace "tenant-c" may not export to AWS`},
		{"tenant-c", "main", "prod-1", "", "forbidden account", `namespace "tenant-c" may not export to AWS`},
		// Another namespace's account, and one that does not exist, are
		// refused alike.
		{"tenant-b", "unused", "prod-x", "", "forbidden account", `namespace "tenant-b" may not export with AWS account "unused"`},
		{"tenant-b", "nope", "prod-x", "", "forbidden account", `namespace "tenant-b" may not export with AWS account "nope"`},
		{"tenant-b", "", "prod-1", "", "forbidden productCode", `AWS account "b" does not allow product code "prod-1" for namespace "tenant-b" (allowed: prod-b)`},
		{"default", "main", "prod-3", "", "forbidden productCode", "allowed: prod-1, prod-2"},
		{"tenant-b", "", "prod-b", "us-east-1.example.com", "invalid region", "AWS region"},
	} {
		a, err := as.Authorize(tc.ns, tc.account, tc.product, tc.region)
		var got string
		switch {
		case err == nil:
			got = a.Name
		default:
			fs := odometer.ErrorFields(err)
			if len(fs) != 1 {
				t.Errorf("Authorize(%q, %q, %q): %v names %d fields", tc.ns, tc.account, tc.product, err, len(fs))
				continue
			}
			got = odometer.ErrorCode(err) + " " + fs[0].Field
			if !strings.Contains(fs[0].Reason, tc.reason) {
				t.Errorf("Authorize(%q, %q, %q): reason %q does not say %q", tc.ns, tc.account, tc.product, fs[0].Reason, tc.reason)
			}
		}
		if got != tc.want {
			t.Errorf("Authorize(%q, %q, %q, %q) = %q (%v); want %q", tc.ns, tc.account, tc.product, tc.region, got, err, tc.want)
		}
	}

	// Nil and empty accounts refuse everybody; the implicit default
	// grants namespace default any product code, and nobody else anything.
	for _, none := range []*Accounts{nil, {}} {
		if _, err := none.Authorize("default", "", "p", ""); odometer.ErrorCode(err) != odometer.EFORBIDDEN {
			t.Errorf("no accounts: %v", err)
		}
	}
	def := DefaultAccounts()
	if a, err := def.Authorize("default", "", "any-product", "us-east-1"); err != nil || a.Name != "default" || a.Profile != "" ||
		a.RoleARN != "" || a.Endpoint != "" {
		t.Errorf("the implicit default for namespace default: %+v, %v", a, err)
	}
	if _, err := def.Authorize("tenant-a", "", "any-product", ""); odometer.ErrorCode(err) != odometer.EFORBIDDEN {
		t.Errorf("the implicit default for another namespace: %v", err)
	}
	if _, err := def.Authorize("tenant-a", "default", "any-product", ""); odometer.ErrorCode(err) != odometer.EFORBIDDEN {
		t.Errorf("the implicit default named by another namespace: %v", err)
	}
}

func TestDestinationRegion(t *testing.T) {
	t.Parallel()
	a := &Account{Region: "eu-west-1"}
	if got := a.DestinationRegion(""); got != "eu-west-1" {
		t.Errorf("no region: %q", got)
	}
	if got := a.DestinationRegion("us-east-1"); got != "us-east-1" {
		t.Errorf("the destination's region: %q", got)
	}
}

func TestNewAccountsErrors(t *testing.T) {
	t.Parallel()
	ok := func() Account {
		return Account{Name: "main", Namespaces: []string{"default"}, ProductCodes: []string{"prod-1"}}
	}
	for _, tc := range []struct {
		name   string
		change func(a *Account, more *[]Account)
		fields []string
		reason string // a substring of the first reason
	}{
		{"no name", func(a *Account, _ *[]Account) { a.Name = "" }, []string{"accounts[0].name"}, "letters"},
		{"name not a slug", func(a *Account, _ *[]Account) { a.Name = "main account" }, []string{"accounts[0].name"}, "letters"},
		{"name twice", func(a *Account, more *[]Account) { *more = append(*more, ok()) }, []string{"accounts[1].name"}, "accounts[0]'s already"},
		{"no namespaces", func(a *Account, _ *[]Account) { a.Namespaces = nil }, []string{"accounts[0].namespaces"}, "required"},
		{"empty namespace", func(a *Account, _ *[]Account) { a.Namespaces = []string{"default", ""} }, []string{"accounts[0].namespaces[1]"}, "empty"},
		{"namespace spaces", func(a *Account, _ *[]Account) { a.Namespaces = []string{" default"} }, []string{"accounts[0].namespaces[0]"}, "spaces"},
		{"namespace twice", func(a *Account, _ *[]Account) { a.Namespaces = []string{"default", "x", "default"} },
			[]string{"accounts[0].namespaces[2]"}, `"default" is accounts[0].namespaces[0] already`},
		{"no product codes", func(a *Account, _ *[]Account) { a.ProductCodes = []string{} }, []string{"accounts[0].productCodes"}, "required"},
		{"product code twice", func(a *Account, _ *[]Account) { a.ProductCodes = []string{"p", "p"} }, []string{"accounts[0].productCodes[1]"}, "already"},
		{"long product code", func(a *Account, _ *[]Account) { a.ProductCodes = []string{strings.Repeat("p", 256)} },
			[]string{"accounts[0].productCodes[0]"}, "longer than 255"},
		{"star and more", func(a *Account, _ *[]Account) { a.ProductCodes = []string{"*", "p"} }, []string{"accounts[0].productCodes"}, "alone"},
		{"region", func(a *Account, _ *[]Account) { a.Region = "localhost:4566" }, []string{"accounts[0].region"}, "AWS region"},
		{"profile", func(a *Account, _ *[]Account) { a.Profile = "seller " }, []string{"accounts[0].profile"}, "profile name"},
		{"role", func(a *Account, _ *[]Account) { a.RoleARN = "odometer-role" }, []string{"accounts[0].roleArn"}, "IAM role ARN"},
		{"user, not role", func(a *Account, _ *[]Account) { a.RoleARN = "arn:aws:iam::123456789012:user/odometer" }, []string{"accounts[0].roleArn"}, "IAM role ARN"},
		{"external id alone", func(a *Account, _ *[]Account) { a.ExternalID = "x1" }, []string{"accounts[0].externalId"}, "with roleArn"},
		{"external id form", func(a *Account, _ *[]Account) {
			a.RoleARN, a.ExternalID = "arn:aws-us-gov:iam::123456789012:role/o", "a b"
		}, []string{"accounts[0].externalId"}, "2 to 1224"},
		{"external id short", func(a *Account, _ *[]Account) {
			a.RoleARN, a.ExternalID = "arn:aws:iam::123456789012:role/o", "a"
		}, []string{"accounts[0].externalId"}, "2 to 1224"},
		{"sts endpoint alone", func(a *Account, _ *[]Account) { a.STSEndpoint = "http://127.0.0.1:4566" }, []string{"accounts[0].stsEndpoint"}, "with roleArn"},
		{"endpoint", func(a *Account, _ *[]Account) { a.Endpoint = "localhost:4566" }, []string{"accounts[0].endpoint"}, "absolute http or https URL"},
		{"sts endpoint", func(a *Account, _ *[]Account) {
			a.RoleARN, a.STSEndpoint = "arn:aws:iam::123456789012:role/o", "ftp://sts/"
		}, []string{"accounts[0].stsEndpoint"}, "absolute http or https URL"},
		{"every field", func(a *Account, _ *[]Account) {
			*a = Account{Name: "-", Region: "x", ExternalID: "e", Endpoint: "/x"}
		}, []string{"accounts[0].name", "accounts[0].namespaces", "accounts[0].productCodes", "accounts[0].region",
			"accounts[0].externalId", "accounts[0].endpoint"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := ok()
			var more []Account
			tc.change(&a, &more)
			_, err := NewAccounts(append([]Account{a}, more...))
			if odometer.ErrorCode(err) != odometer.EINVALID {
				t.Fatalf("NewAccounts: %v; want EINVALID", err)
			}
			var got []string
			for _, f := range odometer.ErrorFields(err) {
				got = append(got, f.Field)
			}
			if strings.Join(got, " ") != strings.Join(tc.fields, " ") {
				t.Fatalf("fields %q; want %q (%v)", got, tc.fields, err)
			}
			if r := odometer.ErrorFields(err)[0].Reason; !strings.Contains(r, tc.reason) {
				t.Errorf("reason %q does not say %q", r, tc.reason)
			}
		})
	}

	// What NewAccounts keeps is its own: changing the input afterwards
	// changes no grant.
	in := []Account{ok()}
	as, err := NewAccounts(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Namespaces[0], in[0].ProductCodes[0] = "tenant-x", "*"
	if _, err := as.Authorize("default", "", "prod-1", ""); err != nil {
		t.Errorf("after the input changed: %v", err)
	}
	if _, err := as.Authorize("tenant-x", "", "prod-1", ""); err == nil {
		t.Error("a namespace added to the input after NewAccounts is granted")
	}
	if l := as.List(); len(l) != 1 || l[0].Name != "main" {
		t.Errorf("List = %+v", l)
	}
}

func TestCheckRegion(t *testing.T) {
	t.Parallel()
	for _, r := range []string{"", "us-east-1", "us-gov-west-1", "eu-central-2", "ap-southeast-3", "cn-north-1", "us-isob-east-1", "il-central-1"} {
		if err := CheckRegion(r); err != nil {
			t.Errorf("CheckRegion(%q): %v", r, err)
		}
	}
	for _, r := range []string{"us-east", "us-east-1 ", "US-EAST-1", "us_east_1", "us-east-1.evil.example", "127.0.0.1", "evil.example/x#",
		"us-east-1/", "u-east-1", "us-a-b-c-1", "us-east-100"} {
		if err := CheckRegion(r); err == nil {
			t.Errorf("CheckRegion(%q) = nil", r)
		}
	}
}
