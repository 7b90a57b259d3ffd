package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times
// (100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// cpuTime is the user+system CPU time process pid has used so far, or 0
// where /proc is not there to say.
func cpuTime(pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ")".
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// cpuMeter measures what share of one core processes used over a run.
type cpuMeter struct {
	pids   []int
	before []time.Duration
}

func meterCPU(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: pids}
	for _, p := range pids {
		m.before = append(m.before, cpuTime(p))
	}
	return m
}

// shares are the processes' CPU use over elapsed, in cores (1.0 = one core busy).
func (m *cpuMeter) shares(elapsed time.Duration) []float64 {
	out := make([]float64, len(m.pids))
	for i, p := range m.pids {
		if elapsed > 0 {
			out[i] = float64(cpuTime(p)-m.before[i]) / float64(elapsed)
		}
	}
	return out
}

// peakRSS is the most resident memory process pid has used so far
// (/proc/<pid>/status VmHWM), or 0 where /proc is not there to say.
func peakRSS(pid int) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
