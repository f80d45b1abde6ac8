#!/usr/bin/env bash
# make-fixtures.sh - rebuild the real rpmbuild fixtures in testdata/rpms/.
#
# The fixtures are committed; run this only to regenerate them (for example after
# changing the spec below). From anywhere:
#
#     testdata/rpms/make-fixtures.sh
#
# Requirements: rpmbuild and rpm (Debian package "rpm"). Nothing is installed and
# nothing outside a private temp dir and this directory is written: rpmbuild runs
# with its own _topdir, and rpm queries use a throwaway database.
#
# The builds are reproducible (SOURCE_DATE_EPOCH, fixed build host, clamped
# mtimes), so re-running the script rewrites byte-identical files and leaves git
# clean. Each package is verified with `rpm -qp` (NEVRA as expected) and
# `rpm -Kv --nosignature` (digests intact) before it is copied here.
set -euo pipefail

out_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fixed inputs make the output byte-for-byte reproducible.
export SOURCE_DATE_EPOCH=1700000000
export TZ=UTC LC_ALL=C

common_defs=(
	--define "_topdir $work/top"
	--define "_dbpath $work/db"
	# gzip payloads: readable by every rpm/dnf, and tiny for a few-line script.
	--define '_binary_payload w9.gzdio'
	--define '_source_payload w9.gzdio'
	# Debian's rpm has no debuginfo or build-id tooling; nothing here is compiled.
	--define '_build_id_links none'
	--define 'debug_package %{nil}'
	--define 'use_source_date_epoch_as_buildtime 1'
	--define 'clamp_mtime_to_source_date_epoch 1'
	--define '_buildhost fixtures.rpm-ingestd.invalid'
	--define '__gpg /usr/bin/gpg'
)

mkdir -p "$work/top/SPECS"

# hello: a shell script in /usr/bin. AutoReq is off so the automatic
# "Requires: /bin/sh" does not stop dnf from installing it into an empty
# --installroot in the end-to-end tests.
cat >"$work/top/SPECS/hello.spec" <<'SPEC'
%{!?rel:%global rel 1}
Name:           hello
Version:        1.0
Release:        %{rel}%{?dist}
Summary:        Tiny test package for rpm-ingestd
License:        MIT
AutoReq:        no

%description
Installs /usr/bin/hello, a shell script that prints one line.

%prep

%build

%install
# $RPM_BUILD_ROOT rather than the buildroot macro: the SRPM stores the expanded spec,
# and the macro would embed the random temp path, breaking reproducibility.
mkdir -p "$RPM_BUILD_ROOT"%{_bindir}
cat >"$RPM_BUILD_ROOT"%{_bindir}/hello <<'SCRIPT'
#!/bin/sh
echo "hello from %{name}-%{version}-%{release}"
SCRIPT
chmod 0755 "$RPM_BUILD_ROOT"%{_bindir}/hello

%files
%{_bindir}/hello
SPEC

# hello-data: a noarch package with one data file.
cat >"$work/top/SPECS/hello-data.spec" <<'SPEC'
Name:           hello-data
Version:        1.0
Release:        1%{?dist}
Summary:        Tiny noarch test package for rpm-ingestd
License:        MIT
BuildArch:      noarch
AutoReq:        no

%description
Installs /usr/share/hello-data/hello.txt.

%prep

%build

%install
mkdir -p "$RPM_BUILD_ROOT"%{_datadir}/%{name}
echo "data from %{name}-%{version}-%{release}" >"$RPM_BUILD_ROOT"%{_datadir}/%{name}/hello.txt

%files
%{_datadir}/%{name}
SPEC

# build MODE SPEC DIST EXPECTED_FILE [extra rpmbuild args...]
# MODE is -bb or -bs; DIST is the %{dist} value (empty for none). The result
# is checked, then copied to $out_dir under its canonical name.
build() {
	local mode=$1 spec=$2 dist=$3 want=$4
	shift 4
	# An empty dist must still be defined (as %{nil}) so no host default leaks in.
	if [[ -z $dist ]]; then
		dist='%{nil}'
	fi
	rm -rf "$work/top/RPMS" "$work/top/SRPMS"
	rpmbuild "$mode" --nodeps --quiet "${common_defs[@]}" \
		--define "dist $dist" "$@" "$work/top/SPECS/$spec" >/dev/null
	local got
	got=$(find "$work/top/RPMS" "$work/top/SRPMS" -name '*.rpm' 2>/dev/null)
	if [[ $(basename "$got") != "$want" ]]; then
		echo "make-fixtures: built '$got', want '$want'" >&2
		exit 1
	fi
	rpm --dbpath "$work/db" -Kv --nosignature "$got" >/dev/null
	cp "$got" "$out_dir/$want"
	printf '%-55s %s\n' "$want" \
		"$(rpm --dbpath "$work/db" -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH} sourcepackage=%{SOURCEPACKAGE}' "$got")"
}

build -bb hello.spec .el9 hello-1.0-1.el9.x86_64.rpm --target x86_64
build -bb hello.spec .el8 hello-1.0-1.el8.x86_64.rpm --target x86_64
build -bb hello.spec .el9 hello-1.0-1.el9.aarch64.rpm --target aarch64 --define '_build_arch aarch64'
build -bb hello.spec .fc39 hello-1.0-1.fc39.x86_64.rpm --target x86_64
build -bb hello.spec .module+el8.9.0+20000+abcdef12 \
	hello-1.0-1.module+el8.9.0+20000+abcdef12.x86_64.rpm --target x86_64
build -bb hello.spec .el7_9 hello-1.0-3.el7_9.x86_64.rpm --target x86_64 --define 'rel 3'
build -bb hello.spec '' hello-1.0-1.x86_64.rpm --target x86_64
build -bb hello-data.spec .el9 hello-data-1.0-1.el9.noarch.rpm
build -bs hello.spec .el9 hello-1.0-1.el9.src.rpm
