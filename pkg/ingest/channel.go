package ingest

import (
	"errors"
	"slices"
	"strings"
)

// More sentinel kinds, for channels and for the operations on stored packages (promote.go, delete.go).
var (
	ErrUnknownChannel = errors.New("unknown channel") // a channel repo.channels does not list: 404
	ErrNotFound       = errors.New("not found")       // the package to promote or delete is not there: 404
)

// CheckChannel refuses a channel name that is not one of channels, naming the configured ones; "" (the default
// channel) always passes. The server calls it before reading an upload's body, the Ingester again for every
// request, so both give the same answer.
func CheckChannel(name string, channels []string) error {
	switch {
	case name == "" || slices.Contains(channels, name):
		return nil
	case len(channels) == 0:
		return fail(ErrUnknownChannel, "channel %.64q: this repository has no channels (repo.channels is empty)", name)
	}
	return fail(ErrUnknownChannel, "channel %.64q is not configured: use one of %s", name, strings.Join(channels, ", "))
}

// channel resolves the channel of an upload: "" without channels configured (whatever the path said, as
// before channels existed), the default channel for "", the name itself if configured.
func (in *Ingester) channel(name string) (string, error) {
	if len(in.opts.Channels) == 0 {
		return "", nil
	}
	if name == "" {
		return in.opts.DefaultChannel, nil
	}
	if err := CheckChannel(name, in.opts.Channels); err != nil {
		return "", err
	}
	return name, nil
}
