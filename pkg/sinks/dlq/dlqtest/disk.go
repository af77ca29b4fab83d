// Package dlqtest fails the dead-letter archive's files on demand, like a
// full or failing disk, for tests of what the archive and the pipeline do
// then.
package dlqtest

import (
	"os"
	"sync"
	"syscall"

	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
)

// Disk opens real files whose writes, syncs and truncations fail while it
// says so. Use Disk.Open with dlq.WithOpenFile.
type Disk struct {
	mu   sync.Mutex
	st   State
	errs int
}

// State is what fails.
type State struct {
	// Full: a write stores Cut bytes (at most all but one of its bytes)
	// and returns ENOSPC.
	Full bool
	Cut  int
	// FailSync: Sync returns EIO. FailTruncate: Truncate returns EIO
	// (cutting a file needs no space: a full disk alone does not fail it).
	FailSync, FailTruncate bool
}

// Set changes what fails.
func (d *Disk) Set(s State) {
	d.mu.Lock()
	d.st = s
	d.mu.Unlock()
}

// Failures counts the calls that failed.
func (d *Disk) Failures() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs
}

func (d *Disk) state() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

func (d *Disk) failed() {
	d.mu.Lock()
	d.errs++
	d.mu.Unlock()
}

// Open opens name for appending, as the archive does.
func (d *Disk) Open(name string) (dlq.File, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	return &file{File: f, d: d}, nil
}

type file struct {
	*os.File
	d *Disk
}

func (f *file) Write(p []byte) (int, error) {
	st := f.d.state()
	if !st.Full {
		return f.File.Write(p)
	}
	f.d.failed()
	n := min(st.Cut, len(p)-1)
	if n > 0 {
		if _, err := f.File.Write(p[:n]); err != nil {
			return 0, err
		}
	}
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func (f *file) Sync() error {
	if f.d.state().FailSync {
		f.d.failed()
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func (f *file) Truncate(size int64) error {
	if f.d.state().FailTruncate {
		f.d.failed()
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}
