//go:build race

package msgq_test

const raceEnabled = true
