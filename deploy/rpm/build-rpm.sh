#!/usr/bin/env bash
# Build rpm-ingestd-<version>-<release>.<arch>.rpm from already-built files.
# rpmbuild only copies them into place: Go is never compiled inside rpmbuild.
#
# Usage: deploy/rpm/build-rpm.sh [--selinux=auto|yes|no] VERSION [OUTDIR]
#
#   VERSION   `git describe --tags --always --dirty` output or a plain version;
#             converted to RPM rules (no '-' in Version):
#               v1.2.3               -> 1.2.3-1
#               v1.2.3-4-gabc1234    -> 1.2.3-1.4.gabc1234
#               v1.3.0-rc1           -> 1.3.0~rc1-1   (sorts before 1.3.0)
#               v1.2.3-dirty         -> 1.2.3-1.dirty
#               abc1234 (no tags), dev -> 0.0.0-0.gabc1234, 0.0.0-0.dev
#   OUTDIR    where the .rpm goes (default: dist/)
#   --selinux ship selinux/rpm-ingestd.pp: yes = required, no = never,
#             auto (default) = if it has been built (`make selinux`)
#
# Environment (paths relative to the repository root):
#   BINARY      default bin/rpm-ingestd (must be a static Linux ELF binary)
#   NGINX_CONF  default nginx/rpm-ingestd.conf
#   NGINX_EXAMPLE default nginx/rpm-ingestd.example.conf
#   SELINUX_PP  default selinux/rpm-ingestd.pp
#   RELEASE     first Release component (default 1; bump to rebuild a tag)
#   ARCH        RPM arch (default: read from the binary's ELF header)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prog=deploy/rpm/build-rpm.sh

die() {
	echo "$prog: $*" >&2
	exit 1
}
usage() {
	sed -n '5,25p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

selinux=auto
while [[ $# -gt 0 ]]; do
	case "$1" in
	--selinux=auto | --selinux=yes | --selinux=no)
		selinux=${1#*=}
		shift
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*) break ;;
	esac
done
[[ $# -ge 1 && $# -le 2 ]] || usage
raw_version=$1
outdir=${2:-$root/dist}

# abspath P: P made absolute against the repository root.
abspath() {
	case "$1" in
	/*) echo "$1" ;;
	*) echo "$root/$1" ;;
	esac
}
binary=$(abspath "${BINARY:-bin/rpm-ingestd}")
nginx_conf=$(abspath "${NGINX_CONF:-nginx/rpm-ingestd.conf}")
nginx_example=$(abspath "${NGINX_EXAMPLE:-nginx/rpm-ingestd.example.conf}")
selinux_pp=$(abspath "${SELINUX_PP:-selinux/rpm-ingestd.pp}")
release_base=${RELEASE:-1}
[[ "$release_base" =~ ^[0-9]+$ ]] || die "RELEASE=$release_base: must be a number"

# --- Version -> RPM Version and Release -------------------------------------

# sanitize S: keep characters RPM allows in Version/Release.
sanitize() {
	printf '%s' "$1" | sed -e 's/[^A-Za-z0-9._+~^]/./g'
}

v=${raw_version#v}
dirty=""
if [[ "$v" == *-dirty ]]; then
	dirty=.dirty
	v=${v%-dirty}
fi
if [[ "$v" =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
	# N commits after tag BASE.
	base=${BASH_REMATCH[1]}
	release="$release_base.${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
elif [[ "$v" =~ ^[0-9a-f]{7,40}$ && ! "$v" =~ ^[0-9]+$ ]]; then
	# --always without any tag: a bare commit id.
	base=0.0.0
	release="0.g$v"
elif [[ ! "$v" =~ ^[0-9] ]]; then
	# "dev" or anything else that is not a version.
	base=0.0.0
	release="0.$(sanitize "$v")"
else
	base=$v
	release=$release_base
fi
# Remaining '-' in a tag mark a pre-release (1.3.0-rc1): '~' sorts it first.
version=$(sanitize "${base//-/\~}")
release=$(sanitize "$release$dirty")
[[ -n "$version" && -n "$release" ]] || die "cannot derive a version from '$raw_version'"

# --- Inputs -----------------------------------------------------------------

[[ -f "$binary" ]] || die "$binary not found: run 'make build' first (or set BINARY)"
[[ -f "$nginx_conf" ]] || die "$nginx_conf not found (or set NGINX_CONF)"
[[ -f "$nginx_example" ]] || die "$nginx_example not found (or set NGINX_EXAMPLE)"
for f in deploy/systemd/rpm-ingestd.service deploy/config.yml selinux/setup.sh README.md; do
	[[ -f "$root/$f" ]] || die "$root/$f not found"
done

case "$selinux" in
yes) [[ -f "$selinux_pp" ]] || die "--selinux=yes but $selinux_pp not found: run 'make selinux'" ;;
auto)
	if [[ -f "$selinux_pp" ]]; then
		selinux=yes
	else
		selinux=no
		echo "$prog: $selinux_pp not built; packaging without the SELinux module" >&2
	fi
	;;
esac

# elf_arch FILE: RPM arch of an ELF binary, from e_machine (and EI_DATA).
elf_arch() {
	local magic data machine
	magic=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
	[[ "$magic" == 7f454c46 ]] || return 1
	data=$(od -An -tu1 -j5 -N1 "$1" | tr -d ' ')
	if [[ "$data" == 1 ]]; then
		machine=$(od -An -tu2 -j18 -N2 --endian=little "$1" | tr -d ' ')
	else
		machine=$(od -An -tu2 -j18 -N2 --endian=big "$1" | tr -d ' ')
	fi
	case "$machine:$data" in
	62:1) echo x86_64 ;;
	183:1) echo aarch64 ;;
	21:1) echo ppc64le ;;
	22:2) echo s390x ;;
	243:1) echo riscv64 ;;
	*) return 1 ;;
	esac
}
if [[ -n "${ARCH:-}" ]]; then
	arch=$ARCH
else
	arch=$(elf_arch "$binary") || die "$binary: not an ELF binary of a known architecture (set ARCH)"
fi

command -v rpmbuild >/dev/null 2>&1 || die "rpmbuild not found (RHEL: dnf install rpm-build; Debian: apt-get install rpm)"

# --- Build ------------------------------------------------------------------

top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
src=$top/SOURCES
mkdir -p "$src" "$outdir"
outdir=$(cd "$outdir" && pwd)

install -m 0755 "$binary" "$src/rpm-ingestd"
install -m 0644 "$root/deploy/systemd/rpm-ingestd.service" "$src/rpm-ingestd.service"
install -m 0644 "$root/deploy/config.yml" "$src/config.yml"
install -m 0644 "$nginx_conf" "$src/rpm-ingestd.conf"
install -m 0644 "$nginx_example" "$src/rpm-ingestd.example.conf"
install -m 0644 "$root/deploy/logrotate/rpm-ingestd" "$src/rpm-ingestd.logrotate"
install -m 0755 "$root/selinux/setup.sh" "$src/setup.sh"
install -m 0644 "$root/README.md" "$src/README.md"
install -m 0644 "$root/LICENSE" "$src/LICENSE"
args=(--without selinux)
if [[ "$selinux" == yes ]]; then
	install -m 0644 "$selinux_pp" "$src/rpm-ingestd.pp"
	args=(--with selinux)
fi

# _build_id_links none: Debian's rpm otherwise wants /usr/lib/.build-id links
# (and the static Go binary has no GNU build-id). The rpm database lives in
# the temporary topdir, so nothing touches the host's.
rpmbuild -bb \
	--target "$arch" \
	"${args[@]}" \
	--define "_topdir $top" \
	--define "_sourcedir $src" \
	--define "_rpmdir $outdir" \
	--define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
	--define "_build_id_links none" \
	--define "_dbpath $top/rpmdb" \
	--define "pkg_version $version" \
	--define "pkg_release $release" \
	"$here/rpm-ingestd.spec" >"$top/rpmbuild.log" 2>&1 || {
	cat "$top/rpmbuild.log" >&2
	die "rpmbuild failed"
}

echo "$prog: version $raw_version -> $version-$release, arch $arch, SELinux module: $selinux"
sed -n 's/^Wrote: /wrote /p' "$top/rpmbuild.log"
