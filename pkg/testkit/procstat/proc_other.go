//go:build !linux

package procstat

import "errors"

// Of needs /proc: elsewhere benchmarks omit the other process's figures.
func Of(pid int) (Usage, error) { return Usage{}, errors.New("procstat: no /proc on this system") }
