package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// ReleaseEvery is how often Release looks at the heap.
const ReleaseEvery = 15 * time.Second

// ReleaseAbove is how much a quiet process's heap may grow, or hold free
// and not yet given back, before Release collects again.
const ReleaseAbove = 4 << 20

// Release hands memory back after a burst until ctx ends. Go frees memory
// only at a collection, and runs one only as the heap grows: a proxy whose
// clients have gone quiet allocates next to nothing, so the burst's
// buffers, and the stacks of relays that have ended, would stay in RSS for
// minutes, until the runtime's forced collection every two minutes, and
// then return only as fast as the scavenger gives them back. Whether they
// are garbage cannot be told without a collection: the last one may have
// seen them live. So every ReleaseEvery, when no collection ran since the
// last look, Release collects and returns the free memory at once
// (debug.FreeOSMemory), unless it did so at the last look and the heap has
// not grown by ReleaseAbove since, nor holds that much free. A busy
// process collects by itself and is left alone; a quiet one costs one
// collection of its heap after each burst.
func Release(ctx context.Context) {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	t := time.NewTicker(ReleaseEvery)
	defer t.Stop()
	var cycles uint64
	released := false // at the last look, and nothing collected since
	var after uint64  // the heap's objects just after that release
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		n, free, objects := samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64()
		quiet := n == cycles
		if quiet && (!released || objects > after+ReleaseAbove || free > ReleaseAbove) {
			debug.FreeOSMemory()
			metrics.Read(samples)
			n, after = samples[0].Value.Uint64(), samples[2].Value.Uint64()
			released = true
		} else if !quiet {
			released = false
		}
		cycles = n
	}
}
