package odometer

import (
	"context"
	"time"
)

// EventStore keeps events durably. Implementations: sqlite.Store,
// eventlog.Log and postgres.Store; storetest.Run is the contract every one
// must pass.
type EventStore interface {
	// AppendEvents stores events (each carrying its Namespace) in one
	// transaction and returns, in input order, whether each was Accepted or a
	// Duplicate of an identity (Namespace, Source, ID) stored before or earlier
	// in the same call. It returns only after the transaction is durable on
	// disk. On error nothing was stored, with one exception: an EUNAVAILABLE
	// error from a database server whose answer to the commit was lost
	// leaves the outcome unknown. The events may then be stored; a retry
	// reports them as duplicates, so nothing is ever counted twice.
	AppendEvents(ctx context.Context, events []Event) ([]Outcome, error)

	// ListEvents returns stored events matching f, newest event time first
	// (ties: the later appended first). f.Limit must be positive (EINVALID
	// otherwise). Substring filters are case-sensitive.
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)

	// ScanEvents calls fn for every stored event matching s, in no particular
	// order. The ScannedEvent and its Data are only valid during the call.
	// If fn returns an error the scan stops and ScanEvents returns it.
	ScanEvents(ctx context.Context, s EventScan, fn func(*ScannedEvent) error) error

	// LateWatermark returns the latest LateMark.At stored for (namespace,
	// eventType, subject), or the zero time if no late event of theirs was
	// ever appended. AppendEvents writes the marks that LateMarks.Due
	// returns in its own transaction, so a late event and its mark are
	// committed together.
	LateWatermark(ctx context.Context, namespace, eventType, subject string) (time.Time, error)

	// ListSubjects returns the distinct subjects of f.Namespace's stored
	// events (of every type) that start with f.Prefix and sort after
	// f.After, in byte order, at most f.Limit of them. f.Limit must be
	// positive (EINVALID otherwise). Prefix and After are compared as
	// bytes, case-sensitively, with no wildcards; they may hold any bytes,
	// also ones no stored subject can (NUL, invalid UTF-8), and the answer
	// is still exact. It never reads every event: its cost grows with the
	// number of event types times the subjects returned.
	ListSubjects(ctx context.Context, f SubjectFilter) ([]string, error)

	// LookupEvents returns the stored events of the namespace with exactly
	// this id, and this source unless source is "": at most one per source
	// (an identity is stored once), ordered by source, each the version
	// stored first. An empty result is not an error. id and source are
	// compared as bytes, case-sensitively, with no wildcards; they may hold
	// any bytes, also ones no stored event can (NUL), and the answer is
	// still exact. It does not read other events: with a source it is a
	// point lookup of the identity; without one it probes each of the
	// namespace's distinct sources once, and a namespace with more than
	// 100,000 distinct sources is refused with EINVALID naming field
	// "source" (a source is then required). (eventlog.Log reads other
	// events to find one it stored before it recorded where events are:
	// docs/storage.md.)
	LookupEvents(ctx context.Context, namespace, id, source string) ([]Event, error)
}

// SubjectFilter selects the subjects ListSubjects returns. To page through
// them, pass the last subject of a full page as the next page's After.
type SubjectFilter struct {
	Namespace string
	Prefix    string // only subjects that start with it; "" = all
	After     string // only subjects greater than it; "" = from the first
	Limit     int    // at most this many; must be > 0
}

// EventFilter selects events to list. Zero times are unbounded; ranges are
// half-open [From, To).
type EventFilter struct {
	Namespace                   string
	From, To                    time.Time // event time
	IngestedFrom, IngestedTo    time.Time // receive time
	IDContains, SubjectContains string    // substring matches; empty = any
	Limit                       int       // at most this many; must be > 0
}

// EventScan selects the events a meter reads.
type EventScan struct {
	Namespace string
	Type      string
	Subjects  []string  // empty = every subject; no duplicates
	From, To  time.Time // event time [From, To); zero = unbounded
	// NotRolledUp, when not zero, keeps only the events that the rollup
	// with this ID does not hold yet: those stored before it was created
	// that its backfill has not reached. Once the backfill is done the
	// scan finds nothing. Only a RollupStore's scans accept it.
	NotRolledUp uint64
}

// ScannedEvent is what aggregation needs of an event.
type ScannedEvent struct {
	Subject    string
	Source     string
	ID         string
	Time       time.Time
	IngestedAt time.Time
	Data       []byte
}

// MeterStore keeps meter definitions. Deleted meters are kept (with
// DeletedAt set) but are invisible to Find and List, and their slug may be
// reused.
type MeterStore interface {
	// CreateMeter stores a new meter; the caller sets ID (NewID), CreatedAt
	// and UpdatedAt. It returns ECONFLICT if a meter with the same slug exists
	// in the namespace.
	CreateMeter(ctx context.Context, m *Meter) error
	// UpdateMeter replaces the stored meter with m.ID. ENOTFOUND if missing.
	UpdateMeter(ctx context.Context, m *Meter) error
	// DeleteMeter marks the meter deleted at the given time. ENOTFOUND if
	// missing.
	DeleteMeter(ctx context.Context, namespace, id string, at time.Time) error
	// FindMeter returns the meter with this id or slug. ENOTFOUND if missing.
	FindMeter(ctx context.Context, namespace, idOrSlug string) (*Meter, error)
	// ListMeters returns the namespace's meters ordered by slug; with
	// namespace "", every namespace's, ordered by namespace and slug.
	ListMeters(ctx context.Context, namespace string) ([]*Meter, error)
}

// Rollup is a meter definition whose usage a RollupStore keeps rolled up:
// aggregated per subject, group-by values and time bucket, next to the
// events, in the same transaction as each append (docs/rollups.md). Meters
// whose definitions are equal share one rollup.
type Rollup struct {
	ID uint64 // given by the store, never reused
	// Meter is the definition: only what decides which events count and
	// how (Namespace, EventType, Aggregation, ValueProperty, EventFrom,
	// GroupBy, Filters) is kept; other fields are empty.
	Meter Meter
	// Fingerprint identifies the definition (usage.Fingerprint).
	Fingerprint [32]byte
	// Backfilled is set once the rollup holds every event stored before
	// it was created, as well as every one after.
	Backfilled bool
	// Pending counts, while the backfill runs, roughly how many of the
	// events stored before the rollup was created it has yet to read.
	Pending int64
}

// RollupCell is one stored aggregate: of the events of one bucket, one
// subject (unless the cell is for all subjects) and one combination of
// the meter's group-by values.
type RollupCell struct {
	Bucket  time.Time // the bucket's start
	Subject string    // "" in cells for all subjects
	// Groups encodes the meter's group-by values (usage.GroupValues); Value
	// the aggregate, a list of partial aggregates (usage.Partials). Both
	// are only valid during the ReadRollups callback.
	Groups, Value []byte
}

// RollupScan selects rollup cells.
type RollupScan struct {
	Rollup uint64
	// Size is the buckets' length: usage.Quarter, time.Hour or 24 hours
	// (UTC days).
	Size      time.Duration
	BySubject bool      // cells per subject; false: cells for all subjects
	Subjects  []string  // with BySubject: only these (sorted, distinct); empty = all
	From, To  time.Time // bucket starts [From, To); zero = unbounded
}

// RollupStore is an EventStore that keeps usage rollups with its events.
// Every AppendEvents adds its accepted events to the cells of every rollup
// of their namespace and type, so that cells and events always agree: a
// Snapshot sees an event and its cells, or neither (a store may write the
// cells later, as long as its snapshots count them until then).
type RollupStore interface {
	EventStore
	// EnsureRollup returns the namespace's rollup of r.Meter's definition
	// (matched by r.Fingerprint), creating it if there is none. A new
	// rollup holds the events appended after its creation; its backfill
	// (BackfillRollup) adds those stored before.
	EnsureRollup(ctx context.Context, r Rollup) (Rollup, error)
	// Rollups returns every rollup of the namespace ("" = of every
	// namespace), by ID.
	Rollups(ctx context.Context, namespace string) ([]Rollup, error)
	// DropRollup deletes a rollup and its cells. ENOTFOUND if missing.
	DropRollup(ctx context.Context, id uint64) error
	// BackfillRollup adds to the rollup up to about max of the events
	// stored before its creation that it lacks, in one transaction, and
	// returns the rollup as it is then.
	BackfillRollup(ctx context.Context, id uint64, max int) (Rollup, error)
	// Snapshot returns a consistent view of the store's events and
	// rollups as of now, for one query; it must be closed.
	Snapshot(ctx context.Context) (RollupSnapshot, error)
}

// RollupSnapshot is one consistent view of a RollupStore: a usage query
// that reads cells and the events not rolled up yet through one snapshot
// counts every event exactly once, while appends and backfills run.
type RollupSnapshot interface {
	// Rollups is RollupStore.Rollups in this view.
	Rollups(ctx context.Context, namespace string) ([]Rollup, error)
	// ReadRollups calls fn for every cell that s selects, in no
	// particular order. Several cells may share a bucket, subject and
	// group values, and a cell of a finer size may stand for part of a
	// bucket of s.Size: the aggregates of the cells in a bucket add up to
	// its aggregate.
	ReadRollups(ctx context.Context, s RollupScan, fn func(*RollupCell) error) error
	// ScanEvents is EventStore.ScanEvents in this view.
	ScanEvents(ctx context.Context, s EventScan, fn func(*ScannedEvent) error) error
	Close() error
}

// Store is everything the server needs from a database.
type Store interface {
	EventStore
	MeterStore
	CreditStore
	ExportStore
	KeyStore
	// Ping checks that the database answers; /readyz uses it.
	Ping(ctx context.Context) error
	Close() error
}
