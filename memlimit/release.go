package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// ReleaseEvery is how often Release looks at the heap.
const ReleaseEvery = 15 * time.Second

// ReleaseAbove is how much garbage and free heap, not yet given back to
// the kernel, Release lets a quiet process keep.
const ReleaseAbove = 4 << 20

// Release hands memory back after a burst until ctx ends. Go frees memory
// only at a collection, and runs one only as the heap grows: a proxy whose
// clients have gone quiet allocates next to nothing, so the garbage of the
// burst (buffers, the stacks of relays that have ended) would stay in RSS
// for minutes, until the runtime's forced collection every two minutes,
// and then return only as fast as the scavenger gives it back. Every
// ReleaseEvery, when no collection ran since the last look and more than
// ReleaseAbove of the heap is free or held by objects beyond those the
// last collection found live, Release collects and returns the free
// memory at once (debug.FreeOSMemory). A busy process collects by itself,
// so it costs a busy process nothing, and a quiet one one collection of a
// small heap after each burst.
func Release(ctx context.Context) {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	t := time.NewTicker(ReleaseEvery)
	defer t.Stop()
	var cycles uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		n, free := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		objects, live := samples[2].Value.Uint64(), samples[3].Value.Uint64()
		if n == cycles && free+objects-min(live, objects) > ReleaseAbove {
			debug.FreeOSMemory()
			metrics.Read(samples)
			n = samples[0].Value.Uint64()
		}
		cycles = n
	}
}
