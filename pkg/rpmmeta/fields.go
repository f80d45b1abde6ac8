package rpmmeta

// validateFields checks that the identifying fields are present: a header without them is not a package. What
// characters they may hold is policy, not parsing, and belongs to the caller (pkg/ingest refuses, with 422, any
// field that would not make a safe file name), so FileName must not be used as a path before that check.
func validateFields(p *Package) error {
	for _, f := range []struct{ name, value string }{
		{"name", p.Name}, {"version", p.Version}, {"release", p.Release}, {"arch", p.Arch},
	} {
		if f.value == "" {
			return invalidf("missing %s", f.name)
		}
	}
	return nil
}
