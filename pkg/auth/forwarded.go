package auth

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ProxyLogin decides a login the proxy asks about on a client's behalf: nginx's auth_request sends the client's
// Authorization header and the client's address in RealIPHeader to the daemon, before it lets an upload,
// promotion or deletion through. The daemon's htpasswd, limiter and audit trail then decide and see every login
// through the proxy, as they do for direct clients.
//
// Only a TrustedProxy peer may ask (else ErrForbidden): the answer carries the user name the proxy will forward.
// The proxy must send a valid address in RealIPHeader, which is the limiter's key (ErrForbidden without one: one
// shared key for every client would let one attacker lock everyone out). Without htpasswd there is nothing to
// check a password against, and the answer is ErrForbidden naming server.htpasswd: a proxy that asks must never
// be told "yes" for want of a password file.
//
// Otherwise it is Authorize's rule with that key: the limiter first (a *LimitError), then missing or wrong
// credentials (ErrUnauthorized; wrong ones count as a failure). It returns the user and the key, for the logs and
// the audit record, also on failure once the key is known.
func (a *Authenticator) ProxyLogin(r *http.Request) (user, client string, err error) {
	peer, _ := PeerFrom(r.Context())
	if !a.trust.TrustedProxy(peer) {
		return "", peer.String(), fmt.Errorf("%w: %s is not a trusted proxy; only the proxy may ask for a login check (server.trusted_proxies)",
			ErrForbidden, peer)
	}
	ip, perr := netip.ParseAddr(strings.TrimSpace(r.Header.Get(RealIPHeader)))
	if perr != nil {
		return "", peer.String(), fmt.Errorf("%w: the proxy sent no valid client address in %s (nginx: proxy_set_header %s $remote_addr)",
			ErrForbidden, RealIPHeader, RealIPHeader)
	}
	client = addrKey(cleanAddr(ip))
	if a.htpasswd == nil {
		return "", client, fmt.Errorf("%w: server.htpasswd is not set, so the daemon cannot check logins for the proxy; set it to the proxy's htpasswd file",
			ErrForbidden)
	}
	user, err = a.checkBasic(r, client)
	return user, client, err
}
