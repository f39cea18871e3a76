package odometer

import (
	"encoding/json"
	"testing"
)

// FuzzPathFind checks the single-pass reader of Value and Text against
// gjson: on valid JSON (all that the stores hold), whatever find answers is
// what lookup finds, and Value and Text answer as their gjson versions do.
// On any other input they must not panic.
func FuzzPathFind(f *testing.F) {
	for _, c := range []struct{ data, path string }{
		{`{"model":"gpt-4o","tokens":1234}`, "$.tokens"},
		{`{"model":"gpt-4o","tokens":1234}`, "$.model"},
		{`{"model":"gpt-4o","ms":12.345}`, "$.ms"},
		{` { "a" : { "b" : [ 1 , { "c" : "x\"y" } ] } } `, "$.a.b[1].c"},
		{`{"a":{"b":[1,{"c":"x"}]}}`, "$.a.b[2]"},
		{`{"a":1,"a":2}`, "$.a"},
		{`{"\u0061":1,"a":2}`, "$.a"},
		{`{"a\\":1,"a":2}`, "$.a"},
		{`{"x":"\\","a":"-0.50"}`, "$.a"},
		{`{"a":null}`, "$.a"},
		{`{"a":null}`, "$.a.b"},
		{`{"a":true,"b":[],"c":{}}`, "$.c"},
		{`{"a b":{"é":-7}}`, "$['a b']['é']"},
		{`{"dot.key":5}`, "$['dot.key']"},
		{`{"":5}`, "$['']"},
		{`{"a":"1e3"}`, "$.a"},
		{`{"a":"007"}`, "$.a"},
		{`{"a":"\u0031"}`, "$.a"},
		{`[1,2]`, "$[1]"},
		{`{"a":[[1,2],[3]]}`, "$.a[1][0]"},
		{`"str"`, "$.a"},
		{`{"a":"x"}`, "$.a.b"},
	} {
		f.Add([]byte(c.data), c.path)
	}
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		p, err := CompilePath(path)
		if err != nil {
			return
		}
		raw, found := p.find(data)
		v, vok, verr := p.Value(data)
		s, sok := p.Text(data)
		var buf []byte
		buf, bok := p.AppendText(buf, data)
		if !json.Valid(data) {
			return
		}
		if found {
			r := p.lookup(data)
			if raw == nil && r.Exists() || raw != nil && string(raw) != r.Raw {
				t.Fatalf("find(%q, %s) = %q, lookup = %q (exists %v)", data, path, raw, r.Raw, r.Exists())
			}
		}
		rv, rok, rerr := p.value(data)
		if vok != rok || (verr == nil) != (rerr == nil) || !sameDecimal(v, rv) {
			t.Fatalf("Value(%q, %s) = %v, %v, %v; gjson: %v, %v, %v", data, path, v, vok, verr, rv, rok, rerr)
		}
		rs, rsok := p.text(data)
		if s != rs || sok != rsok {
			t.Fatalf("Text(%q, %s) = %q, %v; gjson: %q, %v", data, path, s, sok, rs, rsok)
		}
		if string(buf) != rs || bok != rsok {
			t.Fatalf("AppendText(%q, %s) = %q, %v; gjson: %q, %v", data, path, buf, bok, rs, rsok)
		}
	})
}

// FuzzParsePlainValue checks that the fast decimal parser returns exactly
// what ParseValue returns, down to the coefficient and exponent.
func FuzzParsePlainValue(f *testing.F) {
	for _, s := range []string{"0", "-0", "1234", "12.50", "-0.001", "007", "999999999999999999", "99999999999999.9999",
		"1000000000000000000", "0.000000000000000001", "1.", ".5", "1e3", "+1", "--1", "1.2.3", " 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parsePlainValue([]byte(s))
		if !ok {
			return
		}
		ref, err := ParseValue(s)
		if err != nil {
			t.Fatalf("parsePlainValue(%q) = %v, ParseValue: %v", s, v, err)
		}
		if !sameDecimal(v, ref) {
			t.Fatalf("parsePlainValue(%q) = %+v, ParseValue = %+v", s, v.d, ref.d)
		}
	})
}

// TestPlainPaths pins down which values take the fast paths, so that a
// change that sends the common case back to gjson is noticed.
func TestPlainPaths(t *testing.T) {
	data := []byte(`{"model":"gpt-4o","tokens":1234,"ms":"0.250","n":{"a":[5,-6.5]},"esc":"a\"b","e":1e3,"c d":"x"}`)
	for _, c := range []struct {
		path  string
		fast  bool
		value string // "" when Value does not take the fast path
	}{
		{"$.tokens", true, "1234"},
		{"$.ms", true, "0.250"},
		{"$.n.a[1]", true, "-6.5"},
		{"$.model", true, ""},
		{"$['c d']", true, ""},
		{"$.esc", true, ""},
		{"$.e", true, ""},
		{"$['dot.key']", false, ""},
	} {
		p, err := CompilePath(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if _, found := p.find(data); found != c.fast {
			t.Errorf("%s: find answered %v, want %v", c.path, found, c.fast)
		}
		raw, _ := p.find(data)
		if raw != nil && raw[0] == '"' {
			raw = raw[1 : len(raw)-1]
		}
		v, ok := parsePlainValue(raw)
		if ok != (c.value != "") || ok && v.d.Text('f') != c.value {
			t.Errorf("%s: parsePlainValue(%q) = %v, %v; want %q", c.path, raw, v.d.Text('f'), ok, c.value)
		}
	}
	value, _ := CompilePath("$.tokens")
	model, _ := CompilePath("$.model")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		_, _, _ = value.Value(data)
		buf, _ = model.AppendText(buf[:0], data)
	}); n != 0 {
		t.Errorf("Value and AppendText allocate %v times per call", n)
	}
}

// sameDecimal reports whether x and y are the same apd value: form, sign,
// coefficient and exponent.
func sameDecimal(x, y Decimal) bool {
	return x.d.Form == y.d.Form && x.d.Negative == y.d.Negative && x.d.Exponent == y.d.Exponent && x.d.Coeff.Cmp(&y.d.Coeff) == 0
}
