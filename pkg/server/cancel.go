package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
)

// ErrStopping is the cause with which the daemon cancels the requests still running when its stop runs out of
// drain time: cmd derives every request's context from one made by context.WithCancelCause and cancels it with
// ErrStopping. Only that cause makes a cancelled request a 503 "stopping".
var ErrStopping = errors.New("the daemon is stopping")

// errClientGone: the request's context was cancelled for another reason than the stop, which for a request
// context means net/http saw the client close its connection (for a spooled upload: nginx, whose client went
// away). Answered with statusClientClosed, which nobody reads, and counted as result "client_gone".
var errClientGone = errors.New("the client went away")

// statusClientClosed is nginx's 499, "client closed request": the status the log and the audit trail give a
// request whose client disconnected before it was answered.
const statusClientClosed = 499

// withCause names why a cancellation error happened, from the request context's cause: the daemon's stop
// (ErrStopping) or the client going away (errClientGone). A direct upload whose body broke off once its request
// was cancelled is put down to the same cause (the stop closes the connections right after cancelling; net/http
// cancels a request whose client closed the connection). A body that broke off while the request's context is
// live stays a 400 ("the body broke off"), as do other errors; and a
// context.Canceled while the request's context is still live (something of ours cancelled it: a bug, a 500), are
// returned unchanged.
func withCause(r *http.Request, err error) error {
	if err == nil || errors.Is(err, ErrStopping) || errors.Is(err, errClientGone) {
		return err
	}
	ctx := r.Context()
	cancelled := errors.Is(err, context.Canceled)
	// A body read that failed because the connection went: not a checksum mismatch or a missing body.
	bodyBroke := errors.Is(err, ingest.ErrBadUpload) &&
		(errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
	switch {
	case ctx.Err() == nil || !(cancelled || bodyBroke):
		return err
	case errors.Is(context.Cause(ctx), ErrStopping):
		return fmt.Errorf("%w: %w", ErrStopping, err)
	}
	return fmt.Errorf("%w: %w", errClientGone, err)
}
