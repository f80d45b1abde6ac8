//go:build !linux

package auth

import (
	"errors"
	"net"
)

// peerCred is Linux-only; elsewhere a unix-socket peer has no credentials and is never a trusted proxy.
func peerCred(*net.UnixConn) (uid, pid int, err error) {
	return 0, 0, errors.New("peer credentials: SO_PEERCRED is Linux-only")
}
