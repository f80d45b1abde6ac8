#!/usr/bin/env bash
# Installs the system packages rpm-ingestd needs, from the distribution's repositories, when they are missing.
#   deploy/deps.sh run    what `make run` needs: Go and createrepo_c
#   deploy/deps.sh test   what `make test` needs: also gcc (for -race), nginx, dnf, rpmbuild, htpasswd, curl,
#                         gpg, shellcheck, systemd-analyze and the SELinux policy development files
#                         and Chromium (pkg/web renders its pages in headless Chromium); then it builds
#                         SeaweedFS's weed once (deploy/seaweedfs.sh), the real S3 server the S3 tests start
# Works on Debian/Ubuntu (apt-get) and RHEL/Fedora-family (dnf). As root it installs; otherwise it prints the
# exact command to run and fails. Go: the distribution's package is installed if `go` is missing; any Go from
# 1.21 on fetches the toolchain go.mod asks for by itself (GOTOOLCHAIN), older ones are refused with advice.
set -euo pipefail

mode=${1:-test}
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1"); }

need go
need createrepo_c
if [ "$mode" = test ]; then
  for c in gcc nginx dnf rpmbuild rpm htpasswd curl gpg shellcheck systemd-analyze; do need "$c"; done
  [ -f /usr/share/selinux/devel/Makefile ] || [ -f /usr/share/selinux/default/include/Makefile ] ||
    missing+=("selinux-policy-devel")
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=("chromium")
fi
# promtool checks and unit-tests deploy/prometheus/alerts.yml.
if [ "$mode" = test ]; then need promtool; fi

# The weed build (several minutes of CPU) overlaps the package installs (mostly downloads and disk) when Go is
# already here; otherwise it runs after them, below.
weed_pid=
weed_log=
if [ "$mode" = test ] && [ "$(id -u)" -eq 0 ] && command -v go >/dev/null 2>&1 &&
  [ ! -x "$("$(dirname "$0")/seaweedfs.sh" --path)" ]; then
  weed_log=$(mktemp)
  "$(dirname "$0")/seaweedfs.sh" >"$weed_log" 2>&1 &
  weed_pid=$!
  trap '[ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null' EXIT
  echo "deps: building SeaweedFS in the background while the packages install (log: $weed_log)"
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: missing: ${missing[*]}"
  if command -v apt-get >/dev/null 2>&1; then
    pkgs=(golang-go createrepo-c)
    [ "$mode" = test ] && pkgs+=(gcc libc6-dev nginx dnf rpm apache2-utils curl gnupg shellcheck systemd selinux-policy-dev)
    [ "$mode" = test ] && pkgs+=(chromium)
    # Debian has no promtool-only package: prometheus ships it. On a host with systemd that also enables a
    # Prometheus server on :9090; `systemctl disable --now prometheus` if the test machine should not run one.
    [ "$mode" = test ] && pkgs+=(prometheus)
    update=(apt-get update)
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends)
  elif command -v dnf >/dev/null 2>&1; then
    pkgs=(golang createrepo_c)
    [ "$mode" = test ] && pkgs+=(gcc glibc-devel nginx dnf rpm-build httpd-tools curl gnupg2 ShellCheck systemd selinux-policy-devel)
    # promtool: Fedora's golang-github-prometheus; RHEL has none (strict=0 skips it): put promtool from
    # https://prometheus.io/download/ on PATH.
    [ "$mode" = test ] && pkgs+=(golang-github-prometheus)
    update=(true)
    # strict=0: ShellCheck lives in EPEL on RHEL; without EPEL the rest still installs (only `make lint` needs it).
    install=(dnf install -y --setopt=strict=0)
    # chromium is in EPEL on RHEL too; strict=0 lets the rest install without it (only pkg/web's test needs it).
    [ "$mode" = test ] && pkgs+=(chromium)
  else
    echo "deps: neither apt-get nor dnf found; install the equivalents of: ${missing[*]}" >&2
    exit 1
  fi
  # A Go already on PATH (often newer than the distribution's) is kept.
  command -v go >/dev/null 2>&1 && pkgs=("${pkgs[@]:1}")
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: run as root: ${update[*]} && ${install[*]} ${pkgs[*]}" >&2
    exit 1
  fi
  "${update[@]}"
  "${install[@]}" "${pkgs[@]}"
fi

# go.mod needs Go 1.26; Go 1.21+ downloads it from the module proxy on first use, older Go cannot.
minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 21 ] 2>/dev/null; then
  echo "deps: $(go env GOVERSION) is too old: install Go 1.26 or newer (https://go.dev/dl) and put it first on PATH" >&2
  exit 1
fi

# The S3 tests (internal/seaweed, pkg/objstore, pkg/lease) start a private SeaweedFS: build it once, cache it.
if [ -n "$weed_pid" ]; then
  status=0
  wait "$weed_pid" || status=$?
  weed_pid=
  cat "$weed_log"
  rm -f "$weed_log"
  if [ "$status" -ne 0 ]; then
    echo "deps: the SeaweedFS build failed (exit $status); rerun deploy/seaweedfs.sh to see it alone" >&2
    exit 1
  fi
elif [ "$mode" = test ]; then
  "$(dirname "$0")/seaweedfs.sh"
fi
