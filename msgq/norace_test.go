//go:build !race

package msgq_test

const raceEnabled = false
