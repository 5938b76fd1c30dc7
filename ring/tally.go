package ring

import "github.com/shmring/shmring/internal/atomicx"

// tally is a handle's cumulative count of messages and payload bytes, shown
// on its role line to monitors (Stats, ringctl) and taken up by the line's
// next holder. Only the handle's goroutine writes them.
type tally struct {
	line  *roleLine
	msgs  uint64
	bytes uint64
}

// start takes up the counters where the line's previous holders left them.
func (t *tally) start(line *roleLine) {
	t.line = line
	// Acquire: the previous holder's last stores.
	t.msgs, t.bytes = line.msgs.Load(), line.bytes.Load()
}

// add counts n messages of bytes bytes.
func (t *tally) add(n uint64, bytes int) {
	t.msgs += n
	t.bytes += uint64(bytes)
	// Relaxed: monitors read them for display, and order nothing by them;
	// a successor reads them after our death, which orders them.
	atomicx.StoreRelaxed(&t.line.msgs, t.msgs)
	atomicx.StoreRelaxed(&t.line.bytes, t.bytes)
}
