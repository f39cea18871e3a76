package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
)

// TestCreditCommitFailures injects failures into the transaction of a
// grant, as TestCommitFailures does for appends: a transient ERROR before
// or at COMMIT rolled the transaction back and is retried (and the ledger's
// Version counts the grant once); a connection lost during COMMIT leaves
// the outcome unknown and is reported as EUNAVAILABLE, not retried.
func TestCreditCommitFailures(t *testing.T) {
	pgtest.Require(t)
	atCommit, beforeCommit, sleepAtCommit := failTriggers("grants")
	tests := []struct {
		name        string
		trigger     string
		kill        bool
		wantCode    string
		wantRetries int
	}{
		{name: "deadlock before commit", trigger: raiseSQL("deadlock_detected", true) + beforeCommit, wantRetries: 1},
		{name: "serialization failure at commit", trigger: raiseSQL("serialization_failure", true) + atCommit, wantRetries: 1},
		{name: "connection lost during commit", trigger: sleepAtCommit, kill: true, wantCode: odometer.EUNAVAILABLE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDatabase(t)
			var logs logBuffer
			s := open(t, url, postgres.Options{Logger: logs.logger()})
			at := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
			f := &odometer.Feature{ID: "F1", Namespace: "ns", Key: "tokens", MeterSlug: "tokens", CreatedAt: at, UpdatedAt: at}
			l := &odometer.Ledger{ID: "L1", Namespace: "ns", Subject: "cust", CreatedAt: at}
			if err := s.CreateFeature(t.Context(), f); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateLedger(t.Context(), l); err != nil {
				t.Fatal(err)
			}
			conn := rawConn(t, url)
			if _, err := conn.Exec(t.Context(), tt.trigger); err != nil {
				t.Fatalf("trigger: %v", err)
			}
			killerDone := killSleeper(t, url, tt.kill)
			g := &odometer.Grant{ID: "G1", Namespace: "ns", LedgerID: "L1", FeatureID: "F1",
				Amount: odometer.DecimalFromInt(10), Priority: 1, EffectiveAt: at, CreatedAt: at}
			err := s.CreateGrant(t.Context(), g)
			<-killerDone
			if code := odometer.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("CreateGrant = %v (code %q); want code %q", err, code, tt.wantCode)
			}
			if err != nil && !strings.Contains(odometer.ErrorMessage(err), "may or may not have been made") {
				t.Errorf("error %q does not say that the outcome is unknown", odometer.ErrorMessage(err))
			}
			if n := logs.count(retryRecord); n != tt.wantRetries {
				t.Errorf("%d retries, want %d; log:\n%s", n, tt.wantRetries, logs.buf.String())
			}
			wantStored := tt.wantCode == ""
			version := queryInt(t, conn, "SELECT version FROM ledgers WHERE namespace = 'ns' AND id = 'L1'")
			stored := queryInt(t, conn, "SELECT count(*) FROM grants WHERE namespace = 'ns' AND id = 'G1'")
			if wantStored && (version != 1 || stored != 1) || !wantStored && (version != 0 || stored != 0) {
				t.Errorf("after the call: version %d and %d grants; want the grant counted once if stored (stored: %v)", version, stored, wantStored)
			}
		})
	}
}
