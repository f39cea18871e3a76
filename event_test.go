package odometer_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/odometerhq/odometer"
)

var now = ts("2024-05-01T12:00:00Z")

var limits = odometer.IngestLimits{MaxEvents: 100, FutureSkew: time.Hour, MaxAge: 365 * 24 * time.Hour}

func TestDecodeEventsValid(t *testing.T) {
	t.Parallel()
	body := `[
	  {"specversion":"1.0","id":"a","source":"s","type":"prompt","subject":"cust-1",
	   "time":"2024-05-01T11:00:00.123456789+02:00","data":{ "tokens" : 12.5 , "model":"gpt-4"}},
	  {"id":"b","source":"s","type":"prompt","subject":"cust-2","datacontenttype":"application/json"}
	]`
	got, err := odometer.DecodeEvents([]byte(body), "ns1", now, limits)
	if err != nil {
		t.Fatal(err)
	}
	want := []odometer.Event{
		{Namespace: "ns1", ID: "a", Source: "s", SpecVersion: "1.0", Type: "prompt", Subject: "cust-1",
			Time: ts("2024-05-01T09:00:00.123456Z"), Data: json.RawMessage(`{"tokens":12.5,"model":"gpt-4"}`), IngestedAt: now},
		{Namespace: "ns1", ID: "b", Source: "s", SpecVersion: "1.0", Type: "prompt", Subject: "cust-2",
			Time: now, DataContentType: "application/json", IngestedAt: now},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("decoded events (-want +got):\n%s", d)
	}
	one, err := odometer.DecodeEvents([]byte(` {"id":"c","source":"s","type":"t","subject":"x"}`), "ns1", now, limits)
	if err != nil || len(one) != 1 || one[0].ID != "c" {
		t.Fatalf("single object: %v %v", one, err)
	}
}

func TestDecodeEventsInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		body   string
		code   string
		fields []odometer.FieldError
	}{
		{"empty body", ``, odometer.EINVALID, []odometer.FieldError{{Index: -1, Field: "body", Reason: "empty request body: expected a CloudEvent object or an array of them"}}},
		{"empty batch", `[]`, odometer.EINVALID, []odometer.FieldError{{Index: -1, Field: "body", Reason: "empty batch: send at least one event"}}},
		{"not json", `{"id":`, odometer.EINVALID, nil},
		{"scalar", `42`, odometer.EINVALID, nil},
		{"missing fields", `[{"id":"a","source":"s","type":"t","subject":"x"},{"type":"t"}]`, odometer.EINVALID, []odometer.FieldError{
			{Index: 1, Field: "id", Reason: "required"},
			{Index: 1, Field: "source", Reason: "required"},
			{Index: 1, Field: "subject", Reason: "required"},
		}},
		{"wrong types", `[{"id":5,"source":"s","type":"t","subject":true}]`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "id", Reason: "must be a string"},
			{Index: 0, Field: "subject", Reason: "must be a string"},
		}},
		{"bad time and data", `[{"id":"a","source":"s","type":"t","subject":"x","time":"yesterday","data":[1]}]`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "time", Reason: `not an RFC 3339 timestamp: "yesterday"`},
			{Index: 0, Field: "data", Reason: "must be a JSON object"},
		}},
		{"future", `{"id":"a","source":"s","type":"t","subject":"x","time":"2024-05-01T14:00:00Z"}`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "time", Reason: "2024-05-01T14:00:00Z is more than 1h0m0s in the future"},
		}},
		{"too old", `{"id":"a","source":"s","type":"t","subject":"x","time":"2020-05-01T14:00:00Z"}`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "time", Reason: "2020-05-01T14:00:00Z is older than the maximum age of 8760h0m0s"},
		}},
		{"specversion", `{"id":"a","source":"s","type":"t","subject":"x","specversion":"0.3"}`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "specversion", Reason: `must be "1.0", got "0.3"`},
		}},
		{"content type", `{"id":"a","source":"s","type":"t","subject":"x","datacontenttype":"text/plain"}`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "datacontenttype", Reason: `only "application/json" is supported, got "text/plain"`},
		}},
		{"long id", `{"id":"` + strings.Repeat("x", 257) + `","source":"s","type":"t","subject":"x"}`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "id", Reason: "longer than 256 bytes"},
		}},
		{"NUL", `{"id":"a\u0000b","source":"s","type":"t","subject":"x\u0000"}`, odometer.EINVALID, []odometer.FieldError{
			{Index: 0, Field: "id", Reason: `must not contain the NUL character (\u0000)`},
			{Index: 0, Field: "subject", Reason: `must not contain the NUL character (\u0000)`},
		}},
		{"too many", `[` + strings.Repeat(`{"id":"a","source":"s","type":"t","subject":"x"},`, 100) + `{"id":"b","source":"s","type":"t","subject":"x"}]`, odometer.ETOOLARGE, []odometer.FieldError{
			{Index: -1, Field: "body", Reason: "more than 100 events"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := odometer.DecodeEvents([]byte(tc.body), "ns", now, limits)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if got != nil {
				t.Errorf("returned events with an error: %+v", got)
			}
			if c := odometer.ErrorCode(err); c != tc.code {
				t.Errorf("code = %q, want %q (%v)", c, tc.code, err)
			}
			if tc.fields != nil {
				if d := cmp.Diff(tc.fields, odometer.ErrorFields(err)); d != "" {
					t.Errorf("fields (-want +got):\n%s", d)
				}
			} else if len(odometer.ErrorFields(err)) == 0 {
				t.Errorf("no field errors in %v", err)
			}
		})
	}
}

// FuzzDecodeEvents checks that the decoder never panics, that it either
// returns events or an error with field errors (never both, never neither),
// and that accepted events satisfy the invariants the stores rely on.
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"x","time":"2024-05-01T11:00:00Z","data":{"v":1}}`))
	f.Add([]byte(`[{"id":"a","source":"s","type":"t","subject":"x"},{"id":"b","source":"s","type":"t","subject":"y","data":null}]`))
	f.Add([]byte(`[{"id":1}]`))
	f.Add([]byte(`{"id":"a","source":"s","type":"t","subject":"x","time":"2024-05-01T11:00:00.123456789-07:00"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"data":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := odometer.DecodeEvents(body, "ns", now, limits)
		if err != nil {
			if events != nil {
				t.Fatalf("events and error: %v", err)
			}
			if len(odometer.ErrorFields(err)) == 0 {
				t.Fatalf("error without field errors: %v", err)
			}
			for _, fe := range odometer.ErrorFields(err) {
				if fe.Field == "" || fe.Reason == "" {
					t.Fatalf("incomplete field error %+v", fe)
				}
			}
			return
		}
		if len(events) == 0 || len(events) > limits.MaxEvents {
			t.Fatalf("%d events without error", len(events))
		}
		for _, e := range events {
			if e.ID == "" || e.Source == "" || e.Type == "" || e.Subject == "" || e.SpecVersion != "1.0" {
				t.Fatalf("accepted incomplete event %+v", e)
			}
			if e.Time.Location() != time.UTC || !e.Time.Equal(e.Time.Truncate(odometer.TimePrecision)) {
				t.Fatalf("time not UTC µs: %v", e.Time)
			}
			if e.Data != nil && (!json.Valid(e.Data) || e.Data[0] != '{') {
				t.Fatalf("data not a JSON object: %q", e.Data)
			}
		}
	})
}
