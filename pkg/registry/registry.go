package registry

// Registry is what the server records decisions through: the audit file, when there is one, and the index. It
// is safe for concurrent use.
type Registry struct {
	audit *Audit // nil: log.audit_file is off
	index *Index
}

// New combines an audit file (nil for none) and an index.
func New(audit *Audit, index *Index) *Registry { return &Registry{audit: audit, index: index} }

// Record appends rec to the audit file (fsynced) and only then updates the index: a placement the file could not
// record is not shown either. The error is the audit file's; the caller must then not carry out the decision.
// Without an audit file the record lives in memory until the daemon stops.
func (r *Registry) Record(rec Record) error {
	if r.audit != nil {
		if err := r.audit.Append(rec); err != nil {
			return err
		}
	}
	r.index.Noted(rec)
	r.index.Placed(rec)
	if rec.Removed() {
		r.index.Removed(rec.Paths...)
	}
	return nil
}

// Index is the registry's index.
func (r *Registry) Index() *Index { return r.index }
