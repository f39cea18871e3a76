package odometer_test

import (
	"strings"
	"testing"

	"github.com/odometerhq/odometer"
)

func TestPath(t *testing.T) {
	t.Parallel()
	data := []byte(`{"tokens":12.50,"s":"7.25","model":"gpt-4","nested":{"a b":{"x":3}},"arr":[{"v":1},{"v":2}],"dot.key":5,"flag":true,"nul":null,"obj":{"k":1},"bad":"abc"}`)
	for _, tc := range []struct {
		path, value, text, err string
		missing                bool
	}{
		{path: "$.tokens", value: "12.5", text: "12.5"},
		{path: "$.s", value: "7.25", text: "7.25"},
		{path: "$.model", err: "not a decimal", text: "gpt-4"},
		{path: "$.nested['a b'].x", value: "3", text: "3"},
		{path: `$["nested"]["a b"]["x"]`, value: "3", text: "3"},
		{path: "$.arr[1].v", value: "2", text: "2"},
		{path: "$['dot.key']", value: "5", text: "5"},
		{path: "$.flag", err: "a boolean", text: "true"},
		{path: "$.obj", err: "an object", text: `{"k":1}`},
		{path: "$.nul", missing: true},
		{path: "$.nope", missing: true},
		{path: "$.arr.v", missing: true},
		{path: "$.tokens.x", missing: true},
		{path: "$.bad", err: "not a decimal", text: "abc"},
	} {
		p, err := odometer.CompilePath(tc.path)
		if err != nil {
			t.Errorf("CompilePath(%q): %v", tc.path, err)
			continue
		}
		v, ok, err := p.Value(data)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: Value error = %v, want %q", tc.path, err, tc.err)
			}
		case tc.missing:
			if ok || err != nil {
				t.Errorf("%s: Value = %v, %v, %v; want missing", tc.path, v, ok, err)
			}
		case err != nil || !ok || v.String() != tc.value:
			t.Errorf("%s: Value = %v, %v, %v; want %s", tc.path, v, ok, err, tc.value)
		}
		s, ok := p.Text(data)
		if tc.missing {
			if ok {
				t.Errorf("%s: Text = %q, want missing", tc.path, s)
			}
		} else if !ok || s != tc.text {
			t.Errorf("%s: Text = %q, %v; want %q", tc.path, s, ok, tc.text)
		}
	}
	for _, bad := range []string{"", "tokens", "$", "$.", "$..a", "$.a[*]", "$.a[?(@.x)]", "$[a]", "$.a['b]", "$x"} {
		if _, err := odometer.CompilePath(bad); err == nil {
			t.Errorf("CompilePath(%q) accepted", bad)
		}
	}
}

func TestMeterValidate(t *testing.T) {
	t.Parallel()
	valid := func() odometer.Meter {
		return odometer.Meter{Slug: "tokens_total", EventType: "prompt", Aggregation: odometer.Sum,
			ValueProperty: "$.tokens", GroupBy: map[string]string{"model": "$.model"}}
	}
	m := valid()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Name != "tokens_total" {
		t.Errorf("name defaults to slug, got %q", m.Name)
	}
	c := odometer.Meter{Slug: "calls", EventType: "api", Aggregation: odometer.Count, ValueProperty: "$.ignored"}
	if err := c.Validate(); err != nil || c.ValueProperty != "" {
		t.Errorf("COUNT: %v, valueProperty %q", err, c.ValueProperty)
	}
	for _, tc := range []struct {
		field  string
		change func(*odometer.Meter)
	}{
		{"slug", func(m *odometer.Meter) { m.Slug = "bad slug" }},
		{"slug", func(m *odometer.Meter) { m.Slug = "" }},
		{"aggregation", func(m *odometer.Meter) { m.Aggregation = "MEDIAN" }},
		{"eventType", func(m *odometer.Meter) { m.EventType = "" }},
		{"valueProperty", func(m *odometer.Meter) { m.ValueProperty = "" }},
		{"valueProperty", func(m *odometer.Meter) { m.ValueProperty = "tokens" }},
		{"groupBy.subject", func(m *odometer.Meter) { m.GroupBy = map[string]string{"subject": "$.s"} }},
		{"groupBy.9x", func(m *odometer.Meter) { m.GroupBy = map[string]string{"9x": "$.s"} }},
		{"groupBy.model", func(m *odometer.Meter) { m.GroupBy = map[string]string{"model": "$..m"} }},
		{"filters.$.region", func(m *odometer.Meter) { m.Filters = map[string][]string{"$.region": {}} }},
		{"filters.region", func(m *odometer.Meter) { m.Filters = map[string][]string{"region": {"eu"}} }},
	} {
		m := valid()
		tc.change(&m)
		err := m.Validate()
		if odometer.ErrorCode(err) != odometer.EINVALID {
			t.Errorf("%s: got %v, want EINVALID", tc.field, err)
			continue
		}
		if f := odometer.ErrorFields(err); len(f) != 1 || f[0].Field != tc.field {
			t.Errorf("%s: fields %+v", tc.field, f)
		}
	}
}

func TestCheckEvents(t *testing.T) {
	t.Parallel()
	m := &odometer.Meter{Slug: "tokens", EventType: "prompt", Aggregation: odometer.Sum, ValueProperty: "$.tokens",
		Filters: map[string][]string{"$.billable": {"true"}}}
	cm, err := m.Compile()
	if err != nil {
		t.Fatal(err)
	}
	events := []odometer.Event{
		{Type: "prompt", Data: []byte(`{"tokens":5,"billable":true}`)},
		{Type: "prompt", Data: []byte(`{"billable":true}`)},
		{Type: "prompt", Data: []byte(`{"tokens":"lots","billable":true}`)},
		{Type: "prompt", Data: []byte(`{"tokens":"lots","billable":false}`)}, // filtered out: not metered
		{Type: "other", Data: []byte(`{}`)},
		{Type: "prompt", Data: []byte(`{"tokens":1e30,"billable":true}`)},
	}
	err = odometer.CheckEvents(events, []*odometer.CompiledMeter{cm})
	fields := odometer.ErrorFields(err)
	if len(fields) != 3 || fields[0].Index != 1 || fields[1].Index != 2 || fields[2].Index != 5 {
		t.Fatalf("CheckEvents = %v", err)
	}
	for _, f := range fields {
		if f.Field != "data.tokens" {
			t.Errorf("field = %q, want data.tokens", f.Field)
		}
	}
	if !strings.Contains(fields[2].Reason, "out of range") {
		t.Errorf("reason = %q", fields[2].Reason)
	}
}
