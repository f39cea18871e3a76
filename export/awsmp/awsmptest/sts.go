package awsmptest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Role is a role the STS stand-in lets be assumed.
type Role struct {
	// KeyID is the access key id of the credentials it hands out; their
	// secret is "secret-" + KeyID and their session token "token-" +
	// KeyID.
	KeyID string
	// ExternalID, when set, must be the caller's ExternalId.
	ExternalID string
}

// AssumeRoleCall is one AssumeRole call the stand-in answered or refused.
type AssumeRoleCall struct {
	RoleARN, ExternalID, SessionName string
	Signer                           Signer // who asked
}

// STS is a stand-in for AWS STS's AssumeRole, for tests that drive the SDK
// through its endpoint override. It speaks the AWS Query protocol: a
// form-encoded POST (Action=AssumeRole, Version=2011-06-15, RoleArn,
// RoleSessionName, ExternalId), answered in XML. A role it does not know,
// or asked for with the wrong external id, gets AccessDenied.
type STS struct {
	URL   string
	Roles map[string]Role // by role ARN; set before the first call

	mu    sync.Mutex
	calls []AssumeRoleCall
}

// StartSTS starts an STS stand-in that lets roles be assumed, on
// 127.0.0.1, closed when the test ends.
func StartSTS(t testing.TB, roles map[string]Role) *STS {
	s := &STS{Roles: roles}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Calls returns the AssumeRole calls, in order.
func (s *STS) Calls() []AssumeRoleCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AssumeRoleCall(nil), s.calls...)
}

func (s *STS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("Action") != "AssumeRole" ||
		r.PostForm.Get("Version") != "2011-06-15" {
		stsError(w, http.StatusBadRequest, "InvalidAction", "the stand-in answers AssumeRole only")
		return
	}
	call := AssumeRoleCall{RoleARN: r.PostForm.Get("RoleArn"), ExternalID: r.PostForm.Get("ExternalId"),
		SessionName: r.PostForm.Get("RoleSessionName"), Signer: signerOf(r)}
	s.mu.Lock()
	s.calls = append(s.calls, call)
	role, ok := s.Roles[call.RoleARN]
	s.mu.Unlock()
	switch {
	case call.Signer.KeyID == "":
		stsError(w, http.StatusForbidden, "MissingAuthenticationToken", "the request is not signed")
		return
	case !ok || role.ExternalID != call.ExternalID:
		stsError(w, http.StatusForbidden, "AccessDenied", fmt.Sprintf("not authorized to perform sts:AssumeRole on %s", call.RoleARN))
		return
	}
	type credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string
		SessionToken    string
		Expiration      string
	}
	var out struct {
		XMLName     xml.Name    `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleResponse"`
		Credentials credentials `xml:"AssumeRoleResult>Credentials"`
		RoleID      string      `xml:"AssumeRoleResult>AssumedRoleUser>AssumedRoleId"`
		Arn         string      `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
		RequestID   string      `xml:"ResponseMetadata>RequestId"`
	}
	out.Credentials = credentials{AccessKeyID: role.KeyID, SecretAccessKey: "secret-" + role.KeyID, SessionToken: "token-" + role.KeyID,
		Expiration: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	out.RoleID = "AROATEST:" + call.SessionName
	out.Arn = call.RoleARN + "/" + call.SessionName
	out.RequestID = "req-test"
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(out)
}

func stsError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	var out struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Type      string   `xml:"Error>Type"`
		Code      string   `xml:"Error>Code"`
		Message   string   `xml:"Error>Message"`
		RequestID string   `xml:"RequestId"`
	}
	out.Type, out.Code, out.Message, out.RequestID = "Sender", code, message, "req-test"
	_ = xml.NewEncoder(w).Encode(out)
}
