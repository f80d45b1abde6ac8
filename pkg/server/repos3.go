package server

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/objstore"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/tree"
)

// RepoObjects is the bucket that serve_repo reads from when the tree is in S3 (storage.backend s3): objstore.Store.
// Objects are streamed from the bucket as they are read, never downloaded whole first (tree.Open does that).
type RepoObjects interface {
	Get(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error)
	Head(ctx context.Context, key string) (objstore.Info, error)
}

// bucketRepo serves GET and HEAD of <RepoURL>/<key> from the bucket: the packages and metadata of every
// repository. Names directly under RepoURL (the .repo file, the public key) are the daemon's own local files in
// top_dir and go to local. Hidden segments (.rpm-ingestd/: pending changes, leases, generation records) and
// directory URLs are 404: a bucket has no directories to list.
type bucketRepo struct {
	objects RepoObjects
	local   http.Handler // the top_dir file server, already stripped of RepoURL
	prefix  string       // RepoURL
	log     *zap.Logger
	onError func(w http.ResponseWriter, r *http.Request, status int, err error)
}

func (b *bucketRepo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, b.prefix+"/")
	if !ok || key == "" || strings.HasSuffix(key, "/") {
		http.NotFound(w, r)
		return
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			http.NotFound(w, r)
			return
		}
	}
	if !strings.Contains(key, "/") {
		http.StripPrefix(b.prefix, b.local).ServeHTTP(w, r)
		return
	}
	var body io.ReadCloser
	var info objstore.Info
	var err error
	if r.Method == http.MethodHead {
		info, err = b.objects.Head(r.Context(), key)
	} else {
		body, info, err = b.objects.Get(r.Context(), key)
	}
	switch {
	case errors.Is(err, objstore.ErrNotFound), errors.Is(err, objstore.ErrInvalidKey):
		http.NotFound(w, r)
		return
	case errors.Is(err, objstore.ErrUnavailable):
		b.log.Warn("serve_repo: bucket unavailable", zap.String("req_id", middleware.GetReqID(r.Context())),
			zap.String("key", key), zap.Error(err))
		b.onError(w, r, http.StatusServiceUnavailable, tree.ErrUnavailable)
		return
	case err != nil:
		b.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	if body != nil {
		defer body.Close()
	}
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(key))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
	}
	if !info.LastModified.IsZero() {
		h.Set("Last-Modified", info.LastModified.UTC().Format(http.TimeFormat))
	}
	// repomd.xml changes with every publish; every other file is named by its content or is a package that is
	// never replaced without overwrite.
	if path.Base(key) == "repomd.xml" || path.Base(key) == "repomd.xml.asc" {
		h.Set("Cache-Control", "no-cache")
	}
	w.WriteHeader(http.StatusOK)
	if body == nil {
		return
	}
	if n, err := io.Copy(w, body); err != nil {
		// The status is sent: the client sees a short body (Content-Length) and retries.
		b.log.Warn("serve_repo: transfer cut off", zap.String("req_id", middleware.GetReqID(r.Context())),
			zap.String("key", key), zap.Int64("sent", n), zap.Int64("size", info.Size), zap.Error(err))
	}
}
