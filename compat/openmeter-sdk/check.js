// Checks that OpenMeter's published JavaScript SDK (@openmeter/sdk, the
// version pinned in package.json) works against an Odometer server
// unchanged: it uses only the SDK's public API, asserts exact numbers, and
// exits non-zero with a message naming the failed step on any mismatch.
//
// Usage: ODOMETER_URL=http://127.0.0.1:8888 node check.js
//
// Every run uses its own meter slug, event type and subjects, so it can run
// against a server that already holds data (including earlier runs).
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { OpenMeter, isHTTPError } from '@openmeter/sdk'

const baseUrl = (process.env.ODOMETER_URL ?? '').replace(/\/+$/, '')
if (!baseUrl) {
  console.error('check.js: set ODOMETER_URL to the server URL, e.g. http://127.0.0.1:8888')
  process.exit(2)
}
const om = new OpenMeter({ baseUrl })

const run = randomUUID().slice(0, 8)
const slug = `compat_tokens_${run}`
const eventType = `compat.tokens.${run}`
const otherType = `compat.other.${run}`
const subjectA = `compat-a-${run}`
const subjectB = `compat-b-${run}`
const subjectC = `compat-c-${run}`
const source = 'odometer-compat'

const HOUR = 3600_000
// Three whole hours that ended at most an hour ago: [base, base+3h).
const base = new Date(Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR)
const at = (minutes) => new Date(base.getTime() + minutes * 60_000)
const from = base
const to = at(180)

// The events, and what the meter (SUM $.tokens by model) must report.
//   hour 0: e1 A gpt-4 0.1, e2 A gpt-4 0.2, e4 B gpt-4 5
//   hour 1: e3 A gpt-3.5 2, e5 B gpt-3.5 "1.25" (a numeric string)
//   now:    e7 C gpt-4 10 (id, source and time set by the SDK)
// plus a resend of e1 (a duplicate), and e6 of another type (not metered).
const ev = (id, subject, minutes, model, tokens, type = eventType) => ({
  id: `${id}-${run}`, source, type, subject, time: at(minutes), data: { model, tokens },
})
const e1 = ev('e1', subjectA, 5, 'gpt-4', 0.1)
const e2 = ev('e2', subjectA, 10, 'gpt-4', 0.2)
const e3 = ev('e3', subjectA, 70, 'gpt-3.5', 2)
const e4 = ev('e4', subjectB, 20, 'gpt-4', 5)
const e5 = ev('e5', subjectB, 80, 'gpt-3.5', '1.25')
const e6 = ev('e6', subjectA, 30, 'gpt-4', 1000, otherType)

let passed = 0
let failures = 0

async function step (name, fn) {
  try {
    await fn()
    passed++
    console.log(`ok   ${name}`)
  } catch (err) {
    failures++
    console.log(`FAIL ${name}`)
    console.log(`     ${describe(err).replaceAll('\n', '\n     ')}`)
  }
}

function describe (err) {
  if (isHTTPError(err)) {
    const raw = err.getField('detail') ?? ''
    return `HTTP ${err.status} ${err.title ?? ''} from ${err.url}: ${err.message} ${raw}`.trim()
  }
  if (err instanceof assert.AssertionError) return err.message
  return String(err?.stack ?? err)
}

// expectHTTPError runs fn, which must fail with an SDK HTTPError of status.
async function expectHTTPError (status, fn) {
  try {
    await fn()
  } catch (err) {
    assert.ok(isHTTPError(err), `expected an HTTPError ${status}, got ${describe(err)}`)
    assert.equal(err.status, status, `expected HTTP ${status}, got ${err.status}: ${err.message}`)
    return err
  }
  assert.fail(`expected HTTP ${status}, but the call succeeded`)
}

const iso = (d) => (d instanceof Date ? d.toISOString() : String(d))

// rows maps a query result's rows to "key=value" strings, sorted, for
// exact comparison; rows whose value is 0 are left out (OpenMeter omits
// windows without usage; a server that writes them is still compatible).
function rows (result, key) {
  assert.ok(result && Array.isArray(result.data), `query result has no data array: ${JSON.stringify(result)}`)
  return result.data.filter((r) => r.value !== 0).map((r) => `${key(r)}=${r.value}`).sort()
}

// rawQuery fetches a query's JSON text without the SDK, to see the exact
// decimal text the server writes.
async function rawQuery (params) {
  const q = new URLSearchParams(params)
  const res = await fetch(`${baseUrl}/api/v1/meters/${encodeURIComponent(slug)}/query?${q}`, {
    headers: { Accept: 'application/json' },
  })
  const text = await res.text()
  assert.equal(res.status, 200, `raw query: HTTP ${res.status}: ${text}`)
  return text
}

console.log(`OpenMeter SDK compatibility check against ${baseUrl} (run ${run}, meter ${slug})`)

let meterId
await step('meters.create: SUM of $.tokens grouped by model', async () => {
  const m = await om.meters.create({
    slug,
    name: `Compat tokens ${run}`,
    description: 'created by compat/openmeter-sdk',
    aggregation: 'SUM',
    eventType,
    valueProperty: '$.tokens',
    groupBy: { model: '$.model' },
  })
  assert.equal(m.slug, slug)
  assert.equal(m.aggregation, 'SUM')
  assert.equal(m.eventType, eventType)
  assert.equal(m.valueProperty, '$.tokens')
  assert.deepEqual(m.groupBy, { model: '$.model' })
  assert.ok(typeof m.id === 'string' && m.id.length > 0, `meter has no id: ${JSON.stringify(m)}`)
  assert.ok(m.createdAt instanceof Date, `createdAt is not an RFC 3339 time: ${m.createdAt}`)
  meterId = m.id
})

await step('meters.create: a second meter with the same slug is a 409', async () => {
  await expectHTTPError(409, () => om.meters.create({ slug, aggregation: 'COUNT', eventType }))
})

await step('events.ingest: single events', async () => {
  for (const e of [e1, e2]) {
    const r = await om.events.ingest(e)
    if (r && typeof r === 'object' && 'accepted' in r) {
      assert.equal(r.accepted, 1, `ingest ${e.id}: ${JSON.stringify(r)}`)
      assert.equal(r.duplicate, 0, `ingest ${e.id}: ${JSON.stringify(r)}`)
    }
  }
})

await step('events.ingest: a batch with a duplicate resend and another event type', async () => {
  const r = await om.events.ingest([e3, e4, e5, { ...e1 }, e6])
  if (r && typeof r === 'object' && 'accepted' in r) {
    assert.equal(r.accepted, 4, `batch: ${JSON.stringify(r)}`)
    assert.equal(r.duplicate, 1, `batch: ${JSON.stringify(r)}`)
  }
})

await step('events.ingest: an event with SDK defaults (id, source, time)', async () => {
  await om.events.ingest({ type: eventType, subject: subjectC, data: { model: 'gpt-4', tokens: 10 } })
})

await step('events.ingest: an invalid batch is a 400 problem and stores nothing', async () => {
  const good = ev('e8', subjectA, 40, 'gpt-4', 100)
  const err = await expectHTTPError(400, () =>
    om.events.ingest([good, { id: `bad-${run}`, source, type: eventType, subject: '', data: { tokens: 1 } }]))
  // The SDK reads problem details only from "Content-Type: application/problem+json".
  assert.ok(err.getField('detail') !== undefined || err.getField('title') !== undefined,
    `the 400 response was not read as application/problem+json: ${err.message}`)
  const listed = await om.events.list({ id: good.id, limit: 10 })
  assert.equal(listed.length, 0, `an event of the rejected batch was stored: ${JSON.stringify(listed)}`)
})

await step('events.list: by subject, newest first, each event once', async () => {
  const list = await om.events.list({ subject: subjectA, limit: 100 })
  assert.ok(Array.isArray(list), `events.list did not return an array: ${JSON.stringify(list)}`)
  const got = list.map((x) => `${x.event.id} ${x.event.type} ${iso(x.event.time)} ${JSON.stringify(x.event.data)}`)
  const want = [e3, e6, e2, e1].map((e) => `${e.id} ${e.type} ${e.time.toISOString()} ${JSON.stringify(e.data)}`)
  assert.deepEqual(got, want)
  for (const x of list) {
    assert.equal(x.event.subject, subjectA)
    assert.equal(x.event.source, source)
    assert.equal(x.event.specversion, '1.0')
    assert.ok(x.ingestedAt instanceof Date, `ingestedAt is not an RFC 3339 time: ${x.ingestedAt}`)
  }
})

await step('events.list: by id, time range and limit', async () => {
  const byId = await om.events.list({ id: e4.id, limit: 10 })
  assert.deepEqual(byId.map((x) => x.event.id), [e4.id])
  const ranged = await om.events.list({ subject: run, from: at(60), to: to, limit: 100 })
  assert.deepEqual(ranged.map((x) => x.event.id), [e5.id, e3.id])
  const limited = await om.events.list({ subject: run, limit: 2 })
  assert.equal(limited.length, 2, `limit 2 returned ${limited.length} events`)
})

await step('meters.list and meters.get (by slug and by id)', async () => {
  const list = await om.meters.list()
  assert.ok(Array.isArray(list), `meters.list did not return an array: ${JSON.stringify(list)}`)
  const m = list.find((x) => x.slug === slug)
  assert.ok(m, `meter ${slug} not in meters.list`)
  assert.equal(m.id, meterId)
  for (const key of [slug, meterId]) {
    const g = await om.meters.get(key)
    assert.equal(g.id, meterId)
    assert.equal(g.slug, slug)
    assert.equal(g.aggregation, 'SUM')
    assert.deepEqual(g.groupBy, { model: '$.model' })
  }
  await expectHTTPError(404, () => om.meters.get(`missing_${run}`))
})

await step('meters.query: total of all time', async () => {
  const r = await om.meters.query(slug)
  assert.deepEqual(rows(r, () => 'total'), ['total=18.55'])
})

await step('meters.query: total over [from, to)', async () => {
  const r = await om.meters.query(slug, { from, to })
  assert.deepEqual(rows(r, () => 'total'), ['total=8.55'])
  const row = r.data[0]
  assert.ok(row.windowStart instanceof Date && row.windowEnd instanceof Date, `window bounds are not times: ${JSON.stringify(row)}`)
  assert.equal(row.windowStart.toISOString(), from.toISOString())
  assert.equal(row.windowEnd.toISOString(), to.toISOString())
})

await step('meters.query: windowSize HOUR', async () => {
  const r = await om.meters.query(slug, { from, to, windowSize: 'HOUR' })
  assert.equal(r.windowSize, 'HOUR')
  assert.deepEqual(rows(r, (x) => iso(x.windowStart)), [
    `${at(0).toISOString()}=5.3`,
    `${at(60).toISOString()}=3.25`,
  ])
  for (const x of r.data) {
    assert.equal(x.windowEnd.getTime() - x.windowStart.getTime(), HOUR, `window ${iso(x.windowStart)}–${iso(x.windowEnd)} is not an hour`)
  }
})

await step('meters.query: subject filter', async () => {
  const r = await om.meters.query(slug, { from, to, windowSize: 'HOUR', subject: [subjectA] })
  assert.deepEqual(rows(r, (x) => `${x.subject} ${iso(x.windowStart)}`), [
    `${subjectA} ${at(0).toISOString()}=0.3`,
    `${subjectA} ${at(60).toISOString()}=2`,
  ])
})

await step('meters.query: groupBy model', async () => {
  const r = await om.meters.query(slug, { from, to, subject: [subjectA], groupBy: ['model'] })
  assert.deepEqual(rows(r, (x) => `${x.subject} ${x.groupBy?.model}`), [
    `${subjectA} gpt-3.5=2`,
    `${subjectA} gpt-4=0.3`,
  ])
})

await step('meters.query: two subjects by model', async () => {
  const r = await om.meters.query(slug, { from, to, subject: [subjectA, subjectB], groupBy: ['model'] })
  assert.deepEqual(rows(r, (x) => `${x.subject} ${x.groupBy?.model}`), [
    `${subjectA} gpt-3.5=2`,
    `${subjectA} gpt-4=0.3`,
    `${subjectB} gpt-3.5=1.25`,
    `${subjectB} gpt-4=5`,
  ])
})

await step('meters.query: filterGroupBy model=gpt-4', async () => {
  const r = await om.meters.query(slug, { from, to, filterGroupBy: { model: 'gpt-4' } })
  assert.deepEqual(rows(r, () => 'total'), ['total=5.3'])
})

await step('meters.query: windowSize DAY in Asia/Kolkata (+05:30)', async () => {
  const r = await om.meters.query(slug, { from, to, windowSize: 'DAY', windowTimeZone: 'Asia/Kolkata' })
  const data = r.data.filter((x) => x.value !== 0)
  assert.ok(data.length >= 1 && data.length <= 2, `expected 1 or 2 day windows, got ${JSON.stringify(r.data)}`)
  const sum = data.reduce((s, x) => s + Math.round(x.value * 100), 0)
  assert.equal(sum, 855, `day windows sum to ${sum / 100}, want 8.55`)
  for (const x of data) {
    // Kolkata midnight is 18:30 UTC; the first and last windows may be
    // clipped to [from, to).
    for (const t of [x.windowStart, x.windowEnd]) {
      const ok = t.getTime() === from.getTime() || t.getTime() === to.getTime() ||
        (t.getUTCHours() === 18 && t.getUTCMinutes() === 30)
      assert.ok(ok, `window bound ${iso(t)} is neither from/to nor a Kolkata midnight`)
    }
  }
})

await step('meters.query: raw JSON writes the exact decimal 0.3', async () => {
  const text = await rawQuery({ from: from.toISOString(), to: to.toISOString(), subject: subjectA, windowSize: 'HOUR' })
  assert.ok(text.includes('"value":0.3'), `raw response lacks "value":0.3: ${text}`)
  assert.ok(!text.includes('0.30000000000000004'), `raw response has a binary floating-point sum: ${text}`)
})

await step('meters.listGroupByValues: model', async () => {
  const values = await om.meters.listGroupByValues(slug, 'model', { from, to })
  assert.ok(Array.isArray(values), `listGroupByValues did not return an array: ${JSON.stringify(values)}`)
  assert.deepEqual([...values].sort(), ['gpt-3.5', 'gpt-4'])
})

await step('events.ingest: resending every event changes nothing', async () => {
  await om.events.ingest([e1, e2, e3, e4, e5, e6])
  const r = await om.meters.query(slug, { from, to })
  assert.deepEqual(rows(r, () => 'total'), ['total=8.55'])
})

await step('meters.update and meters.delete', async () => {
  const u = await om.meters.update(slug, { name: `Compat tokens ${run} (renamed)`, groupBy: { model: '$.model' } })
  assert.equal(u.name, `Compat tokens ${run} (renamed)`)
  assert.equal((await om.meters.get(slug)).name, `Compat tokens ${run} (renamed)`)
  await om.meters.delete(slug)
  await expectHTTPError(404, () => om.meters.get(slug))
})

console.log(`\ncompat: ${passed} passed, ${failures} failed`)
if (failures > 0) {
  console.error('OpenMeter SDK compatibility: FAILED (see the FAIL lines above)')
  process.exit(1)
}
