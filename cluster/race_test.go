//go:build race

package cluster

// raceEnabled: the race detector allocates on its own and sync.Pool drops
// items at random under it, so allocation counts are not checked.
const raceEnabled = true
