package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux build gwpipe runs on (getconf CLK_TCK).
const clockTicks = 100

// procUsage is what a process has cost so far.
type procUsage struct {
	CPUSeconds float64 // user + system, all threads
	PeakRSSMiB float64 // VmHWM
}

// readProc reads the CPU time and peak RSS of process pid from /proc, to
// measure the pipeline's own cost while loadgen drives it from another
// process.
func readProc(pid int) (procUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, err
	}
	// The command name may hold spaces: fields start after its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procUsage{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return procUsage{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err1 != nil || err2 != nil {
		return procUsage{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	u := procUsage{CPUSeconds: (utime + stime) / clockTicks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				u.PeakRSSMiB = kb / 1024
			}
		}
	}
	return u, nil
}
