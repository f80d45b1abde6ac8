package auth

import (
	"os"
	"syscall"
	"time"
)

// changeTime is fi's inode change time (ctime). No process can set it: every write, chmod, chown, utimes (touch,
// touch -d), link, unlink and rename of the inode sets it to the kernel's current time. That makes it the time to
// judge a read against (see racyWindow), where the mtime, which any writer can set to anything, is not.
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)) //nolint:unconvert // int32 fields on 32-bit platforms
	}
	return fi.ModTime()
}
