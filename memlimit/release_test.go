package memlimit

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"testing/synctest"
	"time"
)

var junk [][]byte

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestRelease checks, in fake time, that a process gone quiet after a
// burst collects and gives the burst's memory back within two looks,
// rather than at the runtime's forced collection minutes later, even when
// its last collection saw the burst live; and that it does not collect
// again while nothing has changed.
func TestRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			Release(ctx)
			close(done)
		}()
		for range 64 {
			junk = append(junk, make([]byte, 1<<20))
		}
		// The last collection sees the burst live, as a proxy's last one
		// saw its clients' buffers: nothing tells they die after.
		runtime.GC()
		junk = nil // the burst is over: 64 MiB of garbage
		time.Sleep(ReleaseEvery)
		synctest.Wait() // the first look learns the collections so far
		before := gcCycles()
		time.Sleep(ReleaseEvery)
		synctest.Wait()
		if gcCycles() == before {
			t.Error("no collection after a quiet interval with the burst's garbage")
		}
		after := gcCycles()
		time.Sleep(ReleaseEvery)
		synctest.Wait()
		if gcCycles() != after {
			t.Error("collected again with nothing to give back")
		}
		cancel()
		<-done
	})
}
