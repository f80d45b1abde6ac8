#!/usr/bin/env bash
# Build selinux/rpm-ingestd.pp from rpm-ingestd.{te,if,fc} with the
# distribution's SELinux policy development Makefile.
#
# The policy Makefile writes tmp/ and other artefacts next to the sources, so
# the build runs in a copy under $BUILD_DIR (default selinux/build/); only the
# finished module is copied back to selinux/rpm-ingestd.pp.
#
# Usage: selinux/build.sh
# Environment:
#   SELINUX_DEVEL_MAKEFILE  policy Makefile to use (default: first found of
#                           /usr/share/selinux/devel/Makefile and
#                           /usr/share/selinux/default/include/Makefile)
#   BUILD_DIR               scratch directory (default: selinux/build)
#   SELINUX_ALLOW_WARNINGS  1 = keep a module whose build printed warnings
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module=rpm-ingestd
build_dir=${BUILD_DIR:-$here/build}

find_makefile() {
	if [[ -n "${SELINUX_DEVEL_MAKEFILE:-}" ]]; then
		echo "$SELINUX_DEVEL_MAKEFILE"
		return
	fi
	local m
	# devel/Makefile: RHEL/Fedora (selinux-policy-devel) and Debian/Ubuntu
	# (selinux-policy-dev). The second is where some refpolicy installs put
	# the headers' Makefile.
	for m in /usr/share/selinux/devel/Makefile /usr/share/selinux/default/include/Makefile; do
		if [[ -f "$m" ]]; then
			echo "$m"
			return
		fi
	done
}

makefile=$(find_makefile)
if [[ -z "$makefile" || ! -f "$makefile" ]]; then
	cat >&2 <<EOF
selinux/build.sh: no SELinux policy development Makefile found
  (looked for /usr/share/selinux/devel/Makefile and
   /usr/share/selinux/default/include/Makefile${SELINUX_DEVEL_MAKEFILE:+ and $SELINUX_DEVEL_MAKEFILE}).
Install the policy headers:
  RHEL, Alma, Rocky, Fedora:  dnf install selinux-policy-devel
  Debian, Ubuntu:             apt-get install selinux-policy-dev
EOF
	exit 1
fi
for tool in make m4 checkmodule semodule_package; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "selinux/build.sh: $tool not found (install make, m4, checkpolicy, semodule-utils/policycoreutils)" >&2
		exit 1
	fi
done

rm -rf "$build_dir"
mkdir -p "$build_dir"
cp "$here/$module.te" "$here/$module.if" "$here/$module.fc" "$build_dir/"

# NAME selects the installed policy only for `make load`; pin it so hosts
# without /etc/selinux/config (build containers) work too.
log="$build_dir/build.log"
if ! make -C "$build_dir" -f "$makefile" NAME="${SELINUX_POLICY_NAME:-targeted}" "$module.pp" >"$log" 2>&1; then
	cat "$log" >&2
	echo "selinux/build.sh: policy build FAILED with $makefile" >&2
	exit 1
fi
# m4 deprecation notices (refpolicywarn) and similar are printed but do not fail
# the build; they mean an interface behaves differently than written here.
# Refuse the module unless SELINUX_ALLOW_WARNINGS=1.
if grep -iE 'warning|error|undefined|unknown' "$log" >&2; then
	if [[ "${SELINUX_ALLOW_WARNINGS:-0}" != 1 ]]; then
		echo "selinux/build.sh: policy build produced warnings (above); refusing the module (SELINUX_ALLOW_WARNINGS=1 to accept)" >&2
		exit 1
	fi
fi

cp "$build_dir/$module.pp" "$here/$module.pp"
echo "selinux/build.sh: built $here/$module.pp with $makefile"
