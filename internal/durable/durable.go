// Package durable makes directory changes survive a power loss: an fsync of a file's data is not enough, the
// directory entries that name it (and every directory created on the way) must be synced too. ingest and
// indexer both rely on it and may not import each other, so it lives here, below both.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs dir, making the entries created, renamed or removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s for sync: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// MkdirAll is os.MkdirAll (mode 0755) that also syncs, with sync (SyncDir, or a recorder in tests), the parent of
// every directory it creates, top-down, so a new path is durable before anything inside it is relied upon. When
// dir already exists it costs one stat.
func MkdirAll(dir string, sync func(dir string) error) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Parents first: a synced child entry is of no use inside a parent whose own entry is lost.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := sync(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
