#!/bin/sh
# Stand-in for createrepo_c in pkg/indexer tests. The last argument is the
# repository directory, as with the real tool. Behaviour is chosen through
# the environment (tests pass it as `env VAR=... fake-createrepo_c.sh ...`):
#
#   FAKE_CREATEREPO_LOG=file      append "run" and then one argument per line
#   FAKE_CREATEREPO_READY=fifo    write "ready <pid>" there once the TERM trap
#                                 is installed (a handshake, so tests never sleep)
#   FAKE_CREATEREPO_WAIT=fifo     after "ready", block until a line is written there
#   FAKE_CREATEREPO_SLEEP=secs    wait that long; on SIGTERM log "TERM", exit 143
#   FAKE_CREATEREPO_IGNORE_TERM=1 ignore SIGTERM while sleeping (tests SIGKILL)
#   FAKE_CREATEREPO_FAIL=code     print 200 lines of noise and an error, exit code
#
# Like createrepo_c it refuses to run while <out>/.repodata exists, and on
# success writes <out>/repodata/repomd.xml, where <out> is the --outputdir
# argument, or the repository directory without one.
set -u

for repo in "$@"; do :; done
out=$repo
prev=
for a in "$@"; do
	[ "$prev" = --outputdir ] && out=$a
	prev=$a
done
log=${FAKE_CREATEREPO_LOG:-/dev/null}

{
	echo run
	for a in "$@"; do echo "$a"; done
} >>"$log"

if [ -e "$out/.repodata" ]; then
	echo "Critical: Temporary repodata directory $out/.repodata/ already exists! (Another createrepo process is running?)" >&2
	exit 1
fi

if [ -n "${FAKE_CREATEREPO_WAIT:-}" ]; then
	[ -n "${FAKE_CREATEREPO_READY:-}" ] && echo "ready $$" >"$FAKE_CREATEREPO_READY"
	read -r _ <"$FAKE_CREATEREPO_WAIT"
fi

if [ -n "${FAKE_CREATEREPO_SLEEP:-}" ]; then
	if [ "${FAKE_CREATEREPO_IGNORE_TERM:-}" = 1 ]; then
		trap '' TERM
		[ -n "${FAKE_CREATEREPO_READY:-}" ] && echo "ready $$" >"$FAKE_CREATEREPO_READY"
		# exec keeps the ignored disposition, so only SIGKILL ends it and
		# no orphan keeps the output pipe open.
		exec sleep "$FAKE_CREATEREPO_SLEEP"
	fi
	child=
	trap 'echo TERM >>"$log"; [ -n "$child" ] && kill "$child" 2>/dev/null; exit 143' TERM
	sleep "$FAKE_CREATEREPO_SLEEP" &
	child=$!
	[ -n "${FAKE_CREATEREPO_READY:-}" ] && echo "ready $$" >"$FAKE_CREATEREPO_READY"
	# wait returns early when a trapped signal arrives.
	wait "$child"
fi

if [ -n "${FAKE_CREATEREPO_FAIL:-}" ]; then
	i=1
	while [ "$i" -le 200 ]; do
		echo "Directory walk: noise line $i"
		i=$((i + 1))
	done
	echo "C_CREATEREPOLIB: Warning: read_header: $repo/Packages/broken.rpm: not an rpm" >&2
	exit "$FAKE_CREATEREPO_FAIL"
fi

mkdir -p "$out/repodata" || exit 1
# A new file renamed into place, as createrepo_c does: the output directory is seeded with hard links to the
# published generation, and writing through one of them would change the published file in place.
cat >"$out/repodata/.repomd.xml.new" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision></repomd>
EOF
mv -f "$out/repodata/.repomd.xml.new" "$out/repodata/repomd.xml" || exit 1
echo "Pool finished"
