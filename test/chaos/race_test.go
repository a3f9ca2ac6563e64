//go:build race

package chaos

// raceEnabled: under the race detector memory (shadow memory is never
// given back) and latency (everything runs several times slower) say
// nothing about l7lb, so those checks report without failing.
const raceEnabled = true
