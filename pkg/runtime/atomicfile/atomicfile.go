// Package atomicfile replaces a file's content so that a reader, or the
// same program after a crash or a power cut, finds either the old content
// or the new one, never a mix or an empty file. The replay checkpoint, the
// replay ledger's local markers and the CloudWatch poller's state file are
// written with it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces the content of path with data: data goes to a hidden
// temporary file in the same directory (a rename across file systems is
// not atomic), which is flushed to disk, renamed over path, and the
// directory flushed in turn, since the rename is durable only once the
// directory is. The file is readable by its owner only. On failure path is
// unchanged and the temporary file removed.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: the new content is in place, not yet durable: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
