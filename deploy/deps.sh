#!/usr/bin/env bash
# Installs the system packages rpm-ingestd needs, from the distribution's repositories, when they are missing.
#   deploy/deps.sh run    what `make run` needs: createrepo_c
#   deploy/deps.sh test   what `make test` needs: also nginx, dnf, rpmbuild, htpasswd, curl, gpg, shellcheck,
#                         systemd-analyze and the SELinux policy development files
# Works on Debian/Ubuntu (apt-get) and RHEL/Fedora-family (dnf). As root it installs; otherwise it prints the
# exact command to run and fails. Go (>= 1.25) itself must be on PATH: distributions often ship an older one.
set -euo pipefail

mode=${1:-test}
missing_cmds=()
need() { command -v "$1" >/dev/null 2>&1 || missing_cmds+=("$1"); }

need createrepo_c
if [ "$mode" = test ]; then
  for c in nginx dnf rpmbuild rpm htpasswd curl gpg shellcheck systemd-analyze; do need "$c"; done
  [ -f /usr/share/selinux/devel/Makefile ] || [ -f /usr/share/selinux/default/include/Makefile ] ||
    missing_cmds+=("selinux-policy-devel")
fi

if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go is not on PATH: install Go 1.25 or newer (https://go.dev/dl or your distribution's golang package)" >&2
  exit 1
fi

[ ${#missing_cmds[@]} -eq 0 ] && exit 0
echo "deps: missing: ${missing_cmds[*]}"

if command -v apt-get >/dev/null 2>&1; then
  pkgs=(createrepo-c)
  [ "$mode" = test ] && pkgs+=(nginx dnf rpm apache2-utils curl gnupg shellcheck systemd selinux-policy-dev)
  update=(apt-get update)
  install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}")
elif command -v dnf >/dev/null 2>&1; then
  pkgs=(createrepo_c)
  [ "$mode" = test ] && pkgs+=(nginx dnf rpm-build httpd-tools curl gnupg2 ShellCheck systemd selinux-policy-devel)
  update=(true)
  # strict=0: ShellCheck lives in EPEL on RHEL; without EPEL the rest still installs (only `make lint` needs it).
  install=(dnf install -y --setopt=strict=0 "${pkgs[@]}")
else
  echo "deps: neither apt-get nor dnf found; install the equivalents of: ${missing_cmds[*]}" >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: run as root: ${update[*]} && ${install[*]}" >&2
  exit 1
fi
"${update[@]}"
"${install[@]}"
