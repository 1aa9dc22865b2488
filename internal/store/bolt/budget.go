package bolt

import (
	"context"
	"encoding/binary"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tokengate/caddy-tokengate/store"
)

// budgetsBucket holds rate-limit counters: key, NUL, window start (Unix
// nanoseconds, decimal) -> total taken (8 bytes) and when the record may
// be dropped (Unix nanoseconds, 8 bytes), both big-endian.
var budgetsBucket = []byte("rate_budgets")

// TakeBudget checks and takes in one fsync'd write transaction, so a
// daily quota counted here survives a restart, and drops a few records of
// windows that have ended while at it.
func (s *Store) TakeBudget(_ context.Context, b store.BudgetTake) (taken, total int64, err error) {
	err = s.update(func(tx *bbolt.Tx) error {
		bucket := tx.Bucket(budgetsBucket)
		key := strconv.AppendInt(append([]byte(b.Key), 0), b.Window.UnixNano(), 10)
		if v := bucket.Get(key); len(v) == 16 {
			total = int64(binary.BigEndian.Uint64(v))
		}
		taken = b.Grant(total)
		total += taken
		if err := dropEndedBudgets(bucket, key, b.Window, 16); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(total))
		v = binary.BigEndian.AppendUint64(v, uint64(b.KeepUntil.UnixNano()))
		return bucket.Put(key, v)
	})
	if err != nil {
		return 0, 0, err
	}
	return taken, total, nil
}

// dropEndedBudgets deletes, of the n counters from key on, those whose
// records could be dropped by now. Looking at a few per take keeps a
// take's cost flat however many counters there are; as takes come for
// every key, every part of the bucket is looked at in time.
func dropEndedBudgets(b *bbolt.Bucket, key []byte, now time.Time, n int) error {
	var ended [][]byte
	c := b.Cursor()
	seen := 0
	for k, v := c.Seek(key); k != nil && seen < n; k, v = c.Next() {
		seen++
		if len(v) == 16 && int64(binary.BigEndian.Uint64(v[8:])) <= now.UnixNano() {
			ended = append(ended, k)
		}
	}
	for _, k := range ended {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
