#!/usr/bin/env bash
# Verify deploy/systemd/rpm-ingestd.service with `systemd-analyze verify`.
#
# verify refuses units whose ExecStart binary does not exist, and the unit
# names the installed path /usr/bin/rpm-ingestd. So we verify a copy in a
# temporary directory with that path swapped for an executable that exists:
# bin/rpm-ingestd when it has been built, /bin/true otherwise. Nothing else in
# the unit is changed. Any diagnostic (even a warning that verify itself exits
# 0 for, such as an unknown or misspelt directive) fails the check.
#
# Usage: deploy/verify-unit.sh [--security]
#   --security  also print `systemd-analyze security --offline=yes` (informational)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
unit="$here/systemd/rpm-ingestd.service"

security=0
case "${1:-}" in
"") ;;
--security) security=1 ;;
*)
	echo "usage: $0 [--security]" >&2
	exit 2
	;;
esac

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "verify-unit: systemd-analyze not found (install systemd)" >&2
	exit 1
fi

bin=/bin/true
if [[ -x "$root/bin/rpm-ingestd" ]]; then
	bin="$root/bin/rpm-ingestd"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/rpm-ingestd|$bin|g" "$unit" >"$tmp/rpm-ingestd.service"

# --man=no: don't resolve Documentation= man pages. SYSTEMD_LOG_COLOR=0 keeps
# the output greppable.
status=0
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$tmp/rpm-ingestd.service" 2>&1) || status=$?
if [[ $status -ne 0 || -n "$out" ]]; then
	printf '%s\n' "$out" >&2
	echo "verify-unit: FAILED (exit $status) for $unit (ExecStart bin: $bin)" >&2
	exit 1
fi
echo "verify-unit: OK $unit (ExecStart bin: $bin)"

if [[ $security -eq 1 ]]; then
	SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=yes --no-pager "$tmp/rpm-ingestd.service" || true
fi
