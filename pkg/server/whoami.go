package server

import (
	"fmt"
	"net/http"

	"github.com/rpm-ingestd/rpm-ingestd/pkg/auth"
)

// whoamiResponse is the JSON answer of GET /api/v1/whoami.
type whoamiResponse struct {
	User string `json:"user"`
	// Restricted is true when server.permissions is set; false means every authenticated user may upload,
	// promote and delete anywhere.
	Restricted bool `json:"restricted"`
	// Permissions are the rules of server.permissions that name this user or "*", in configuration order; null
	// when Restricted is false.
	Permissions []auth.Rule `json:"permissions"`
}

// whoami answers GET /api/v1/whoami: who the daemon takes the client for, exactly as it decides a change (Authorize:
// Basic credentials against server.htpasswd, or without it the user a trusted proxy names), and the rules that
// apply, so a CI job can check its rights before it uploads. Without a user it answers 401; it changes nothing and
// writes no audit line, and wrong passwords count against the failed-login limiter as anywhere else.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	user, err := s.opts.Auth.Authorize(r)
	if err == nil && user == "" {
		err = fmt.Errorf("%w: this request names no user: send the Basic credentials of a user in server.htpasswd (curl -u USER), or come through the proxy that authenticates users and sets %s",
			auth.ErrUnauthorized, auth.RemoteUserHeader)
	}
	if err != nil {
		s.writeError(w, r, errorStatus(err), err)
		return
	}
	rules, restricted := s.opts.Permissions.For(user)
	writeJSON(w, http.StatusOK, whoamiResponse{User: user, Restricted: restricted, Permissions: rules})
}
