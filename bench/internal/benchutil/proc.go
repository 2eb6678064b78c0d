package benchutil

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory is the resident memory of a set of processes, in KiB. RSS counts shared pages (libraries, Dovecot's
// shared mmaps) once per process, so for a forking server it overstates; PSS divides each shared page among
// the processes sharing it and adds up to what the processes really cost. Both are reported.
type Memory struct {
	Procs  int
	RSSKiB int64
	PSSKiB int64
}

// TreeMemory sums the memory of root and all its descendants.
func TreeMemory(root int) (Memory, error) {
	pids, err := descendants(root)
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, pid := range pids {
		rss, pss, err := procMemory(pid)
		if err != nil {
			continue // exited meanwhile
		}
		m.Procs++
		m.RSSKiB += rss
		m.PSSKiB += pss
	}
	if m.Procs == 0 {
		return m, fmt.Errorf("process %d not found", root)
	}
	return m, nil
}

// descendants returns root and every process whose parent chain leads to it.
func descendants(root int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses, so cut at the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
	}
	var out []int
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out, nil
}

// procMemory reads Rss and Pss from /proc/PID/smaps_rollup.
func procMemory(pid int) (rss, pss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "Rss":
			rss = n
		case "Pss":
			pss = n
		}
	}
	return rss, pss, sc.Err()
}
