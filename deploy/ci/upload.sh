#!/bin/sh
# upload.sh: upload RPMs to rpm-ingestd from a CI job and wait until dnf can install them.
#
# Usage: upload.sh [FILE.rpm ...]
#   With no file given, every *.rpm below $RPM_INGESTD_DIR (default: the current directory) is uploaded.
#   Every upload carries wait=visible and publish=now: its answer comes once each repository it landed in
#   (every arch of a noarch package, every channel) lists it, so when the script exits 0 the job's next stage
#   can `dnf install` any of them at once, whatever arches and repositories they went to.
#
# Environment:
#   RPM_INGESTD_URL           required: the repository host, like https://repo.example.com
#   RPM_INGESTD_USER          optional: upload user (server.htpasswd; nginx asks the daemon about logins)
#   RPM_INGESTD_PASSWORD      optional: its password; handed to curl in a private file, never on a command line
#   RPM_INGESTD_UPLOAD_PATH   default /upload (server.upload_path)
#   RPM_INGESTD_OS_RELEASE    optional: sent as X-OS-Release, for packages whose release has no dist tag
#   RPM_INGESTD_WAIT_TIMEOUT  default 100s: how long each upload waits for visibility; the server caps it at
#                             server.max_wait. Keep it below the proxy's proxy_read_timeout.
#   RPM_INGESTD_RETRIES       default 5: how often one upload is retried after a 503 (daemon busy or stopping)
#                             or a 502 (nginx: the daemon is not answering, e.g. while it restarts), each after
#                             the answer's Retry-After (5 s without one, at most 60 s). A retry is safe: the same
#                             bytes again are answered 200 "already present".
#   RPM_INGESTD_DIR           default .: where to look for *.rpm when no file is given
#
# Output: one line per package, "FILE: <the server's answer>", which names where it landed.
# Exit status:
#   0  every package stored, and visible to dnf in every repository it went to
#   1  an upload was refused or failed (the server's one-line message is printed); the packages before it are
#      stored. Also when an upload was stored but not visible within the timeout (HTTP 202), or stored with an
#      answer that does not say "visible to dnf now" (a server without ?wait=visible).
#   2  usage: no RPM_INGESTD_URL, no curl, no package, or a file that cannot be read
set -u
umask 077

me=upload.sh

usage() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 2
}

[ -n "${RPM_INGESTD_URL:-}" ] || usage "set RPM_INGESTD_URL to the repository host, like https://repo.example.com"
command -v curl >/dev/null 2>&1 || usage "curl is not installed"
retries=${RPM_INGESTD_RETRIES:-5}
case $retries in
'' | *[!0-9]*) usage "RPM_INGESTD_RETRIES must be a whole number, not '$retries'" ;;
esac
url="${RPM_INGESTD_URL%/}${RPM_INGESTD_UPLOAD_PATH:-/upload}"
timeout=${RPM_INGESTD_WAIT_TIMEOUT:-100s}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# The package list, one per line: the arguments, or what find sees.
list=$tmp/list
if [ $# -gt 0 ]; then
	for f in "$@"; do
		printf '%s\n' "$f"
	done >"$list"
else
	find "${RPM_INGESTD_DIR:-.}" -type f -name '*.rpm' | sort >"$list"
fi
total=$(wc -l <"$list" | tr -d ' ')
[ "$total" -gt 0 ] || usage "no *.rpm file given, and none found below ${RPM_INGESTD_DIR:-.}"
while IFS= read -r f; do
	if [ ! -f "$f" ] || [ ! -r "$f" ]; then
		usage "$f is not a readable file"
	fi
done <"$list"

# curl's options that must not show in `ps`: the credentials, as a curl config file only this user can read.
# In its quoted strings a backslash escapes, so backslashes and quotes in the password are escaped.
quote() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
conf=$tmp/curlrc
: >"$conf"
if [ -n "${RPM_INGESTD_USER:-}" ]; then
	printf 'user = "%s:%s"\n' "$(quote "$RPM_INGESTD_USER")" "$(quote "${RPM_INGESTD_PASSWORD:-}")" >>"$conf"
fi
if [ -n "${RPM_INGESTD_OS_RELEASE:-}" ]; then
	printf 'header = "X-OS-Release: %s"\n' "$(quote "$RPM_INGESTD_OS_RELEASE")" >>"$conf"
fi

# message prints the first line of the answer: the daemon's one-line text, or the title of a proxy's HTML page.
message() {
	title=$(tr -d '\r' <"$tmp/body" | sed -n 's:.*<title>\(.*\)</title>.*:\1:p' | head -n 1)
	if [ -n "$title" ]; then
		printf '%s\n' "$title"
	else
		tr -d '\r' <"$tmp/body" | sed -n '/./{p;q;}'
	fi
}

# retry_after prints the last answer's Retry-After in seconds (5 if absent or a date), at most 60.
retry_after() {
	s=$(tr -d '\r' <"$tmp/headers" | sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]:[[:space:]]*\([0-9][0-9]*\)[[:space:]]*$/\1/p' | tail -n 1)
	[ -n "$s" ] || s=5
	[ "$s" -le 60 ] || s=60
	printf '%s\n' "$s"
}

# upload sends one file and returns when it is answered for good: 0 stored and visible, 1 otherwise.
upload() {
	file=$1 attempt=0
	while :; do
		code=$(curl -sS -K "$conf" -T "$file" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$url$query") || {
			printf '%s: %s: upload failed (curl exit %s, see above)\n' "$me" "$file" "$?" >&2
			return 1
		}
		case $code in
		200 | 201)
			# Stored; visible only if the server says so: one that ignores ?wait=visible answers 201 at once.
			answer=$(message)
			case $answer in
			*"visible to dnf now"*)
				printf '%s: %s\n' "$file" "$answer"
				return 0
				;;
			esac
			printf '%s: %s: stored (HTTP %s), but the server did not say it is visible to dnf: %s\n' "$me" "$file" "$code" "$answer" >&2
			return 1
			;;
		202)
			printf '%s: %s: stored, but not visible to dnf within %s: %s\n' "$me" "$file" "$timeout" "$(message)" >&2
			return 1
			;;
		502 | 503)
			if [ "$attempt" -lt "$retries" ]; then
				attempt=$((attempt + 1))
				wait=$(retry_after)
				printf '%s: %s: HTTP %s (%s); retry %s of %s in %ss\n' "$me" "$file" "$code" "$(message)" "$attempt" "$retries" "$wait" >&2
				sleep "$wait"
				continue
			fi
			;;
		esac
		printf '%s: %s: HTTP %s: %s\n' "$me" "$file" "$code" "$(message)" >&2
		return 1
	done
}

# Each upload waits until its own repositories list it: an answer about the last package says nothing about
# another arch's or channel's repository. publish=now skips the indexer's quiet period for each.
query="?wait=visible&publish=now&timeout=$timeout"
while IFS= read -r f; do
	upload "$f" </dev/null || exit 1 # stdin is the list: nothing in upload may read it
done <"$list"
exit 0
