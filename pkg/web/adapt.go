package web

import (
	"time"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/indexer"
)

// RepoFromStatus turns the indexer's view of one repository into a row of the status page, for main's Source
// adapter. path is the repository's path relative to top_dir (slash-separated) and url where clients find it
// ("" for no link).
//
// A run in flight outranks a failure (the failure may be about to be fixed, and "running" is what is true now),
// and a failure outranks pending changes (they will not be published until the failure is fixed, which an
// admin must act on).
func RepoFromStatus(st indexer.RepoStatus, path, url string) Repo {
	r := Repo{
		Path: path, URL: url, Packages: st.Packages, DirtySince: st.DirtySince, LastRun: st.LastEnd,
		LastResult: st.LastResult, LastError: st.LastError,
	}
	// The indexer reports the duration as text for its JSON; a malformed one is shown as no duration at all.
	r.LastDuration, _ = time.ParseDuration(st.LastDuration)
	switch {
	case st.Running:
		r.State = StateRunning
	case st.LastResult == "error":
		r.State = StateFailing
	case st.DirtySince != nil:
		r.State = StateDirty
	default:
		r.State = StateClean
	}
	return r
}
