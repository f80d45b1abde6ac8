package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// debugHandler serves net/http/pprof under /debug/pprof/. It is built on its own mux, never on
// http.DefaultServeMux, and served only on server.debug_listen (a unix socket or loopback address, off by default).
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// debugServer listens on addr and returns the function that serves the profiler there until its ctx ends. A
// failure to listen is returned at once, so a daemon given a debug_listen it cannot use does not start.
func debugServer(addr string, log *zap.Logger) (func(ctx context.Context) error, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log)}
	log.Info("profiler listening (server.debug_listen)", zap.String("listen", addr))
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}
