//go:build !linux

package auth

import (
	"os"
	"time"
)

// changeTime is, outside Linux, the mtime: a version is judged settled by its mtime as it always was there, with
// the limits racyWindow describes for a writer that sets the mtime itself.
func changeTime(fi os.FileInfo) time.Time { return fi.ModTime() }
