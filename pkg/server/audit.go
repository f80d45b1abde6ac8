package server

import (
	"context"
	"errors"
	"net/http"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/registry"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
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
	rec := s.newRecord(r, status, resultClass(err), res, err)
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
		Time:      s.now().UTC(),
		Action:    registry.ActionUpload,
		RequestID: middleware.GetReqID(r.Context()),
		User:      user,
		Client:    s.opts.Auth.ClientAddr(r),
		FileName:  s.sentName(r),
		Status:    status,
		Result:    result,
	}
	if err != nil {
		rec.Reason = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	if res == nil || res.Package == nil {
		return rec
	}
	p := res.Package
	rec.NEVRA, rec.Name, rec.Arch, rec.SHA256, rec.Size, rec.SignedBy = p.NEVRA(), p.Name, p.FileArch(), p.SHA256, p.Size, res.SignedBy
	rec.Paths = res.Paths
	for _, repo := range res.Repos {
		rel, err := filepath.Rel(s.opts.TopDir, repo)
		if err != nil {
			rel = repo
		}
		rec.Repos = append(rec.Repos, filepath.ToSlash(rel))
	}
	return rec
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

// resultClass names the kind of a refusal with one of a bounded set of words, for the audit trail (and for
// metrics labels): never anything the client chose.
func resultClass(err error) string {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, auth.ErrTooManyFailures):
		return "too_many_failures"
	case errors.Is(err, auth.ErrForbidden), errors.Is(err, ingest.ErrForbidden):
		return "forbidden"
	case errors.Is(err, errBusy):
		return "busy"
	case errors.Is(err, context.Canceled):
		return "stopping"
	case errors.Is(err, errSlowUpload):
		return "slow_upload"
	case errors.As(err, &tooBig), errors.Is(err, ingest.ErrTooLarge):
		return "too_large"
	case errors.Is(err, rpmmeta.ErrInvalidPackage):
		return "invalid_package"
	case errors.Is(err, errMissingHeader):
		return "missing_header"
	case errors.Is(err, ingest.ErrBadUpload):
		return "bad_upload"
	case errors.Is(err, ingest.ErrExists):
		return "conflict"
	case errors.Is(err, ingest.ErrRejected):
		return "rejected"
	case errors.Is(err, ingest.ErrNoSpace):
		return "no_space"
	case errors.Is(err, ingest.ErrNotRecorded):
		return "not_recorded"
	}
	return "error"
}
