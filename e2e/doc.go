// Package e2e holds rpm-ingestd's end-to-end tests: the real daemon binary behind a real nginx that runs the
// shipped nginx/rpm-ingestd.conf, real curl uploads, real createrepo_c runs and real dnf queries and installs.
// It has no non-test code; run it with `make e2e` or `go test -count=1 -v ./e2e/...` (as root, see
// main_test.go), after `make deps`.
package e2e
