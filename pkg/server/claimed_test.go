package server

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/rpm-ingestd/rpm-ingestd/internal/testrpm"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/ingest"
	"github.com/rpm-ingestd/rpm-ingestd/pkg/rpmmeta"
)

// claimingPolicy stands for signature.Policy without require_signature on a package whose signature did not
// verify: it accepts every package and reports only a claimed key id.
type claimingPolicy struct{ claimed string }

func (c claimingPolicy) Judge(*rpmmeta.Package, io.ReaderAt) (string, string, error) {
	return "", c.claimed, nil
}

// TestClaimedKeyIDReported: issue 18 item 5 through the API. An unverified signature is never reported as
// signed_by: the upload answer, the audit line and /api/v1/packages carry it as claimed_key_id.
func TestClaimedKeyIDReported(t *testing.T) {
	const claimed = "84e76196298676bb"
	rf := newAuditedFixture(t, func(o *ingest.Options) { o.Signatures = claimingPolicy{claimed} })
	rec := rf.do(t, "PUT", "/upload/", testrpm.Build(t, testrpm.Spec{Name: "c", Release: "1.el9", Arch: "x86_64"}),
		map[string]string{"Accept": "application/json"})
	if rec.Code != 201 {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	var up map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &up); err != nil {
		t.Fatal(err)
	}
	if _, ok := up["signed_by"]; ok || up["claimed_key_id"] != claimed {
		t.Errorf("upload answer signed_by=%v claimed_key_id=%v, want none and %s", up["signed_by"], up["claimed_key_id"], claimed)
	}
	lines := rf.lines(t)
	if len(lines) != 1 || lines[0].SignedBy != "" || lines[0].ClaimedKeyID != claimed {
		t.Errorf("audit %+v, want signed_by \"\" and claimed_key_id %s", lines, claimed)
	}
	rec = rf.do(t, "GET", "/api/v1/packages?name=c", nil, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"claimed_key_id": "`+claimed+`"`) ||
		!strings.Contains(rec.Body.String(), `"signed_by": ""`) {
		t.Errorf("packages: %d %s", rec.Code, rec.Body)
	}
}
