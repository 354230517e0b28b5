//go:build race

package sqlite

// raceEnabled reports whether the tests run under the race detector, which
// makes SQLite (C transpiled to Go, every access instrumented) about twenty
// times slower.
const raceEnabled = true
