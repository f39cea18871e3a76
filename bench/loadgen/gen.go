package main

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// eventType is one kind of generated event and the meter that measures it.
type eventType struct {
	name  string // CloudEvents type, also the meter slug
	meter string // the POST /api/v1/meters body
}

// eventTypes are the generated event types, one meter each.
var eventTypes = []eventType{
	{"tokens", `{"slug":"tokens","name":"LLM tokens","eventType":"tokens","aggregation":"SUM","valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`},
	{"requests", `{"slug":"requests","name":"API requests","eventType":"requests","aggregation":"COUNT"}`},
	{"duration", `{"slug":"duration","name":"Longest request (ms)","eventType":"duration","aggregation":"MAX","valueProperty":"$.ms"}`},
}

// models are the values of data.model, the group-by key.
var models = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b"}

// dupWindow bounds how far back a resend reaches: a resent event is one of
// the dupWindow slots before its lag (see generator), as a retrying client
// resends recent events.
const dupWindow = 100_000

// generator derives every event from (seed, slot) alone, so bodies can be
// built in parallel and a resend is the exact bytes of the original event.
//
// Slot s (0-based position in the sent stream) is a resend with probability
// dupRate; a resend repeats a slot at least lag slots earlier (lag is two
// rounds of requests, so that the original has normally been acknowledged
// when it is resent, as with a client that retries), following chains of
// resends back to the original. Slots before lag are never resends. An
// original slot's content (id, type, subject, time, data) is drawn from its
// own PCG stream.
type generator struct {
	seed     uint64
	dupRate  float64
	subjects uint64
	types    uint64
	source   string
	lag      uint64
	now      time.Time // upper bound of event times, millisecond precision
	spanMs   uint64
}

func newGenerator(c *config, now time.Time) *generator {
	return &generator{
		seed:     c.Seed,
		dupRate:  c.DupRate,
		subjects: uint64(c.Subjects),
		types:    uint64(c.Types),
		source:   c.Source,
		lag:      uint64(max(1, 2*c.Clients*c.Batch)),
		now:      now.UTC().Truncate(time.Millisecond),
		spanMs:   uint64(c.Span / time.Millisecond),
	}
}

// contentSalt separates the stream that draws an event's content from the
// one that decides whether its slot is a resend.
const contentSalt = 0x9e3779b97f4a7c15

func unitFloat(x uint64) float64 { return float64(x>>11) * 0x1p-53 }

// original returns the slot whose event slot s sends: s itself, or for a
// resend the original it repeats.
func (g *generator) original(s uint64) uint64 {
	var p rand.PCG
	for s > g.lag {
		p.Seed(g.seed, s)
		if unitFloat(p.Uint64()) >= g.dupRate {
			return s
		}
		w := min(s-g.lag, dupWindow)
		s = s - g.lag - p.Uint64()%w
	}
	return s
}

const hexDigits = "0123456789abcdef"

// appendEvent appends the JSON of original slot o's event.
func (g *generator) appendEvent(b []byte, o uint64) []byte {
	var p rand.PCG
	p.Seed(g.seed^contentSalt, o)
	// A random (version 4 layout) UUID.
	var id [16]byte
	hi, lo := p.Uint64(), p.Uint64()
	for i := range 8 {
		id[i] = byte(hi >> (8 * i))
		id[8+i] = byte(lo >> (8 * i))
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	typ := p.Uint64() % g.types
	subject := p.Uint64() % g.subjects
	t := g.now.Add(-time.Duration(p.Uint64()%g.spanMs) * time.Millisecond)
	model := models[p.Uint64()%uint64(len(models))]
	v := p.Uint64()

	b = append(b, `{"specversion":"1.0","id":"`...)
	for i, x := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&15])
	}
	b = append(b, `","source":"`...)
	b = append(b, g.source...)
	b = append(b, `","type":"`...)
	b = append(b, eventTypes[typ].name...)
	b = append(b, `","subject":"customer-`...)
	for d := uint64(10000); d > 1 && subject < d; d /= 10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, subject, 10)
	b = append(b, `","time":"`...)
	b = t.AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","data":{"model":"`...)
	b = append(b, model...)
	switch typ {
	case 0: // tokens: SUM $.tokens
		b = append(b, `","tokens":`...)
		b = strconv.AppendUint(b, 1+v%4000, 10)
	case 1: // requests: COUNT
		b = append(b, `","path":"/v1/chat/completions","status":`...)
		b = strconv.AppendUint(b, 200+(v%8)/7*300, 10) // mostly 200, some 500
	default: // duration: MAX $.ms, three decimals
		b = append(b, `","ms":`...)
		b = strconv.AppendUint(b, v%30000, 10)
		b = append(b, '.')
		f := v / 30000 % 1000
		b = append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
	}
	return append(b, "}}"...)
}

// bodies builds the request bodies for events events in requests of batch
// events: JSON arrays when batch mode is on, single objects otherwise. It
// returns them with the number of distinct events among them.
func (g *generator) bodies(events, batch int, array bool) (bodies [][]byte, unique int64) {
	n := (events + batch - 1) / batch
	bodies = make([][]byte, n)
	var next atomic.Int64
	var uniq atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var u int64
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				var k int64
				bodies[i], k = g.body(nil, i, events, batch, array)
				u += k
			}
			uniq.Add(u)
		})
	}
	wg.Wait()
	return bodies, uniq.Load()
}

// body appends request i's body (of bodies' split of events into requests
// of batch events) to b, and returns it with the number of original (not
// resent) events in it.
func (g *generator) body(b []byte, i, events, batch int, array bool) ([]byte, int64) {
	first := i * batch
	last := min(first+batch, events)
	b = slices.Grow(b, (last-first)*240+2)
	if array {
		b = append(b, '[')
	}
	var u int64
	for s := first; s < last; s++ {
		if s > first {
			b = append(b, ',')
		}
		o := g.original(uint64(s))
		if o == uint64(s) {
			u++
		}
		b = g.appendEvent(b, o)
	}
	if array {
		b = append(b, ']')
	}
	return b, u
}
