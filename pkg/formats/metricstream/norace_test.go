//go:build !race

package metricstream

const raceEnabled = false
