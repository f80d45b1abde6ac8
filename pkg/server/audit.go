package server

import (
	"context"
	"net/http"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
)

// Recording decisions in the upload registry. Every upload request ends in exactly one decision, and each
// decision is one Record, written before the answer: an accepted upload from inside the ingester (Request.Commit,
// so a record that cannot be written means the package is not kept and the answer is 500), a refusal from finish
// or refuse (a record that cannot be written is logged and the refusal stands).

// Recorder records decisions; *registry.Registry implements it. Record must write the record durably before it
// returns nil, and be safe for concurrent use.
type Recorder interface {
	Record(rec registry.Record) error
}

// decision is the registry state of one upload request: whether its decision is already recorded.
type decision struct{ recorded bool }

type decisionKey struct{}

// trackDecision gives r a decision cell for commitFunc and recordDecision to share; nil Registry needs none.
func (s *Server) trackDecision(r *http.Request) *http.Request {
	if s.opts.Registry == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), decisionKey{}, &decision{}))
}

// commitFunc is the ingest.Request.Commit of an upload: it records the acceptance while the ingester can still
// undo it. Nil without a Registry.
func (s *Server) commitFunc(r *http.Request) func(*ingest.Result) error {
	d, _ := r.Context().Value(decisionKey{}).(*decision)
	if d == nil {
		return nil
	}
	return func(res *ingest.Result) error {
		status, result := http.StatusCreated, registry.ResultCreated
		switch res.Status {
		case ingest.Present:
			status, result = http.StatusOK, registry.ResultExists
		case ingest.Replaced:
			result = registry.ResultReplaced
		}
		if err := s.opts.Registry.Record(s.newRecord(r, status, result, res, nil)); err != nil {
			return err
		}
		d.recorded = true
		return nil
	}
}

// recordDecision records a refused upload before it is answered. An accepted one was recorded by commitFunc;
// one that failed after that (a replacement rename, a marker) keeps its record, which is logged here.
func (s *Server) recordDecision(r *http.Request, status int, res *ingest.Result, err error) {
	d, _ := r.Context().Value(decisionKey{}).(*decision)
	if d == nil || err == nil {
		return
	}
	if d.recorded {
		s.log.Error("upload failed after its audit record was written; the record stands",
			zap.String("req_id", middleware.GetReqID(r.Context())), zap.Int("status", status), zap.Error(err))
		return
	}
	s.recordRefusal(r, status, res, err)
}

// recordRefusal records a refused request; a failure to write is logged and changes nothing.
func (s *Server) recordRefusal(r *http.Request, status int, res *ingest.Result, err error) {
	if s.opts.Registry == nil {
		return
	}
	rec := s.newRecord(r, status, uploadResult(status, err), res, err)
	if werr := s.opts.Registry.Record(rec); werr != nil {
		s.log.Error("audit record of a refused upload not written", zap.String("req_id", rec.RequestID),
			zap.Int("status", status), zap.String("result", rec.Result), zap.Error(werr))
	}
}

// newRecord describes the decision on r. res may be nil (refused before the package was read) and may hold a
// package without paths (refused before routing).
func (s *Server) newRecord(r *http.Request, status int, result string, res *ingest.Result, err error) registry.Record {
	user, _ := r.Context().Value(userKey{}).(string)
	rec := registry.Record{
		Time:         s.now().UTC(),
		Action:       s.actionOf(r),
		RequestID:    middleware.GetReqID(r.Context()),
		User:         user,
		Client:       s.opts.Auth.ClientAddr(r),
		ForwardedFor: s.opts.Auth.ReportedAddr(r),
		FileName:     s.sentName(r),
		Status:       status,
		Result:       result,
	}
	if err != nil {
		rec.Reason = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	if res == nil || res.Package == nil {
		return rec
	}
	p := res.Package
	rec.NEVRA, rec.Name, rec.Arch, rec.SHA256, rec.Size, rec.SignedBy = p.NEVRA(), p.Name, p.FileArch(), p.SHA256, p.Size, res.SignedBy
	rec.ClaimedKeyID = res.ClaimedKeyID
	rec.Paths, rec.Stamps = res.Paths, res.Stamps
	for _, repo := range res.Repos {
		rec.Repos = append(rec.Repos, s.relRepo(repo))
	}
	return rec
}

// actionOf is the audit action of a request to a route that changes the tree, for refusals recorded before its
// handler ran: promote and delete have their own, everything else is an upload.
func (s *Server) actionOf(r *http.Request) string {
	switch {
	case r.URL.Path == "/api/v1/promote":
		return registry.ActionPromote
	case strings.HasPrefix(r.URL.Path, "/api/v1/packages/"):
		return registry.ActionDelete
	}
	return registry.ActionUpload
}

// sentName is the file name the client sent: the last segment of /upload/{filename} (curl -T appends it), or ""
// when it sent the bare upload path. nginx passes the client's URI on, so this holds behind the proxy too.
func (s *Server) sentName(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.Path, s.opts.UploadPath+"/")
	if !ok || rest == "" {
		return ""
	}
	return path.Base(rest)
}

// recordLifecycle writes the audit lines of a promotion or a deletion: one per file placed or removed (all under
// the request's id), or one for a refusal. Unlike an upload's, it is written after the operation: a failed write
// is logged, and the operation stands.
func (s *Server) recordLifecycle(ev lifecycleEvent) {
	base := registry.Record{Time: s.now().UTC(), Action: ev.Action, RequestID: ev.ReqID, User: ev.User,
		Client: ev.Client, ForwardedFor: ev.ForwardedFor, Status: ev.Status, Result: "done"}
	if ev.Err != nil {
		base.Result = uploadResult(ev.Status, ev.Err)
		base.Reason = strings.ReplaceAll(ev.Err.Error(), "\n", "; ")
	}
	var recs []registry.Record
	switch res := ev.Result.(type) {
	case *ingest.PromoteResult:
		for i := range res.Paths {
			if ev.Err != nil {
				break
			}
			rec, p := base, res.Packages[i]
			rec.Result = string(res.Status)
			rec.FileName = res.Sources[i] // where it was promoted from
			rec.NEVRA, rec.Name, rec.Arch, rec.SHA256, rec.Size = p.NEVRA(), p.Name, p.FileArch(), p.SHA256, p.Size
			if i < len(res.SignedBy) && i < len(res.ClaimedKeyIDs) {
				rec.SignedBy, rec.ClaimedKeyID = res.SignedBy[i], res.ClaimedKeyIDs[i]
			}
			rec.Paths, rec.Repos = res.Paths[i:i+1], []string{s.relRepo(res.Repos[i])}
			recs = append(recs, rec)
		}
	case *ingest.DeleteResult:
		for i, p := range res.Paths {
			if ev.Err != nil {
				break
			}
			rec := base
			rec.NEVRA = strings.TrimSuffix(path.Base(p), ".rpm")
			rec.Paths, rec.Repos = []string{p}, []string{s.relRepo(res.Repos[i])}
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		recs = append(recs, base)
	}
	s.recordAfter(recs...)
}

// recordPruned writes one audit line per file retention removed after an upload.
func (s *Server) recordPruned(r *http.Request, pruned []string) {
	recs := make([]registry.Record, 0, len(pruned))
	for _, p := range pruned {
		recs = append(recs, registry.Record{Time: s.now().UTC(), Action: registry.ActionPrune,
			RequestID: middleware.GetReqID(r.Context()), Status: http.StatusOK, Result: "done",
			NEVRA: strings.TrimSuffix(path.Base(p), ".rpm"), Paths: []string{p},
			Repos: []string{path.Dir(path.Dir(p))}, Reason: "repo.retention"})
	}
	s.recordAfter(recs...)
}

// recordAfter writes records of something already done: a failure is logged, it cannot be undone.
func (s *Server) recordAfter(recs ...registry.Record) {
	if s.opts.Registry == nil {
		return
	}
	for _, rec := range recs {
		if err := s.opts.Registry.Record(rec); err != nil {
			s.log.Error("audit record not written", zap.String("req_id", rec.RequestID), zap.String("action", rec.Action),
				zap.Strings("paths", rec.Paths), zap.Error(err))
		}
	}
}

// relRepo is an absolute repository directory relative to TopDir, slash-separated, as records name it.
func (s *Server) relRepo(dir string) string {
	rel, err := filepath.Rel(s.opts.TopDir, dir)
	if err != nil {
		return dir
	}
	return filepath.ToSlash(rel)
}
