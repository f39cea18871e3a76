package odometer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var fastLimits = IngestLimits{MaxEvents: 50, FutureSkew: time.Hour, MaxAge: 24 * 365 * time.Hour}
var fastNow = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// FuzzDecodeFast checks the single-pass decoder against the reference
// decoder: whatever the fast path accepts, the reference accepts with the
// same events.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"x","time":"2024-05-01T11:00:00Z","data":{"v":1}}`,
		`[{"id":"a","source":"s","type":"t","subject":"x"},{"id":"b","source":"s","type":"t","subject":"y","data":null}]`,
		` [ {"id":"a", "source":"s","type":"t","subject":"x","data":{ "a" : [1, 2.5e3, -0.1, true, null, "x\"y\\u00e9"] , "b":{}}} ] `,
		`{"id":"é","source":"s","type":"t","subject":"x","ext":{"deep":[[[]]]},"time":null}`,
		`{"ID":"a","source":"s","type":"t","subject":"x"}`,
		`{"id":"a","id":"b","source":"s","type":"t","subject":"x"}`,
		`{"id":"a\u0041","source":"s","type":"t","subject":"x"}`,
		`{"id":"a","source":"s","type":"t","subject":"x","data":{"k":"\ud83d\ude00"}}`,
	} {
		f.Add([]byte(s))
	}
	// The decoder's own corpus is a good start too.
	if files, err := filepath.Glob("testdata/fuzz/FuzzDecodeEvents/*"); err == nil {
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				continue
			}
			lines := strings.SplitN(string(b), "\n", 3)
			if len(lines) < 2 || !strings.HasPrefix(lines[1], "[]byte(") {
				continue
			}
			if s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")); err == nil {
				f.Add([]byte(s))
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeFast(body, "ns", fastNow, fastLimits)
		if !ok {
			return
		}
		ref, err := decodeReference(body, "ns", fastNow, fastLimits)
		if err != nil {
			t.Fatalf("fast path accepted what the reference rejects (%v): %q", err, body)
		}
		if d := cmp.Diff(ref, fast); d != "" {
			t.Fatalf("fast and reference differ on %q (-ref +fast):\n%s", body, d)
		}
	})
}

func TestDecodeFastTakesCommonShape(t *testing.T) {
	body := []byte(`[{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"x","time":"2024-05-01T11:00:00.5Z","data":{"tokens": 12, "model":"gpt-4"}},
	  {"id":"b","source":"s","type":"t","subject":"y","myext":"v"}]`)
	fast, ok := decodeFast(body, "ns", fastNow, fastLimits)
	if !ok {
		t.Fatal("fast path refused the common shape")
	}
	ref, err := decodeReference(body, "ns", fastNow, fastLimits)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ref, fast); d != "" {
		t.Fatalf("(-ref +fast):\n%s", d)
	}
	if string(fast[0].Data) != `{"tokens":12,"model":"gpt-4"}` {
		t.Fatalf("data not compacted: %s", fast[0].Data)
	}
}
