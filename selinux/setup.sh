#!/usr/bin/env bash
# Label an rpm-ingestd deployment for SELinux. Safe to run again: every step
# checks the current state first, so a second run changes nothing.
#
# Usage: setup.sh [--module FILE.pp] [--tcp-port PORT] [--dry-run] TOP_DIR SPOOL_DIR
#
#   TOP_DIR     repo.top_dir from /etc/rpm-ingestd/config.yml
#   SPOOL_DIR   server.spool_dir (nginx's client_body_temp_path is inside it)
#   --module    install this policy module first (semodule -i), e.g.
#               /usr/share/selinux/packages/rpm-ingestd.pp. Without it the
#               module must already be installed.
#   --tcp-port  server.listen is host:PORT rather than the unix socket: label
#               the port rpm_ingestd_port_t. The module lets the daemon bind
#               it and nginx (httpd_t) connect to it; nothing else.
#   --dry-run   print the commands that would change something, change nothing
#
# What it does:
#   1. semodule -i (with --module)
#   2. semanage fcontext: TOP_DIR(/.*)? -> rpm_ingestd_repo_t,
#      SPOOL_DIR(/.*)? -> rpm_ingestd_spool_t (skipped when the policy
#      already maps the path there, as for the defaults under /srv/repo)
#   3. restorecon -R on both, and on the installed binary, /etc/rpm-ingestd
#      and /run/rpm-ingestd (labelled before the module existed)
#   4. semanage port (with --tcp-port)
#
# httpd_can_network_connect is deliberately left alone. With the unix socket
# nginx needs no network access at all; with TCP the module allows nginx to
# connect to rpm_ingestd_port_t only, whereas the boolean would let every
# nginx worker connect to any port on any host.
set -euo pipefail

prog=$(basename "$0")
module_name=rpm-ingestd

usage() {
	sed -n '4,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

module=""
tcp_port=""
dry_run=0
while [[ $# -gt 0 ]]; do
	case "$1" in
	--module)
		[[ $# -ge 2 ]] || usage
		module=$2
		shift 2
		;;
	--module=*)
		module=${1#*=}
		shift
		;;
	--tcp-port)
		[[ $# -ge 2 ]] || usage
		tcp_port=$2
		shift 2
		;;
	--tcp-port=*)
		tcp_port=${1#*=}
		shift
		;;
	-n | --dry-run)
		dry_run=1
		shift
		;;
	-h | --help) usage ;;
	--)
		shift
		break
		;;
	-*) usage ;;
	*) break ;;
	esac
done
[[ $# -eq 2 ]] || usage

# run CMD...: execute, or print it in dry-run mode.
run() {
	if [[ $dry_run -eq 1 ]]; then
		printf '+'
		printf ' %q' "$@"
		printf '\n'
	else
		"$@"
	fi
}

# abs_dir PATH: absolute, normalised, no trailing slash; refuses / and
# relative paths (SELinux file contexts are absolute regexes).
abs_dir() {
	local p=$1
	[[ "$p" == /* ]] || die "$p: must be an absolute path"
	p=$(realpath -m -- "$p")
	[[ "$p" != / ]] || die "refusing to label /"
	echo "$p"
}

# regex_quote PATH: escape the characters semanage fcontext treats as regex.
regex_quote() {
	printf '%s' "$1" | sed -e 's/[][\\.^$*+?(){}|]/\\&/g'
}

top_dir=$(abs_dir "$1")
spool_dir=$(abs_dir "$2")
[[ "$top_dir" != "$spool_dir" ]] || die "TOP_DIR and SPOOL_DIR must differ"
case "$spool_dir/" in
"$top_dir"/*) echo "$prog: warning: SPOOL_DIR $spool_dir is inside TOP_DIR $top_dir; nginx may publish uploads in flight under repo_url" >&2 ;;
esac
if [[ -n "$tcp_port" ]] && ! [[ "$tcp_port" =~ ^[0-9]+$ && "$tcp_port" -ge 1 && "$tcp_port" -le 65535 ]]; then
	die "--tcp-port $tcp_port: not a port number"
fi
if [[ -n "$module" && ! -f "$module" ]]; then
	die "--module $module: no such file"
fi

if [[ $dry_run -eq 0 ]]; then
	[[ $(id -u) -eq 0 ]] || die "must run as root (or use --dry-run)"
	if command -v selinuxenabled >/dev/null 2>&1 && ! selinuxenabled; then
		echo "$prog: SELinux is disabled on this host; nothing to do."
		exit 0
	fi
	for tool in semodule semanage restorecon; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "$tool not found: dnf install policycoreutils-python-utils (Debian: apt-get install policycoreutils-python-utils)"
	done
fi

# 1. Module.
if [[ -n "$module" ]]; then
	echo "$prog: installing policy module $module"
	run semodule -i "$module"
fi
if [[ $dry_run -eq 0 ]] && ! semodule -l | awk '{print $1}' | grep -qx "$module_name"; then
	die "policy module $module_name is not installed; pass --module /usr/share/selinux/packages/$module_name.pp"
fi

# current_type PATH: the type the loaded policy assigns to PATH, or "".
current_type() {
	command -v matchpathcon >/dev/null 2>&1 || return 0
	matchpathcon -n -- "$1" 2>/dev/null | awk -F: '{print $3}'
}

# local_type SPEC: the type of a local (semanage) file context rule with
# exactly this regex, or "".
local_type() {
	# ENVIRON, not awk -v: -v would unescape the backslashes in the regex.
	semanage fcontext -l -C 2>/dev/null |
		spec=$1 awk '$1 == ENVIRON["spec"] { split($NF, c, ":"); print c[3]; exit }'
}

# label_dir DIR TYPE: make DIR and everything below it TYPE, then relabel.
label_dir() {
	local dir=$1 type=$2 spec have
	spec="$(regex_quote "$dir")(/.*)?"
	if [[ $dry_run -eq 1 ]]; then
		run semanage fcontext -a -t "$type" "$spec"
	else
		have=$(local_type "$spec")
		if [[ "$have" == "$type" ]]; then
			echo "$prog: $spec already $type (local rule)"
		elif [[ -n "$have" ]]; then
			echo "$prog: $spec: local rule $have -> $type"
			run semanage fcontext -m -t "$type" "$spec"
		elif [[ "$(current_type "$dir")" == "$type" && "$(current_type "$dir/x")" == "$type" ]]; then
			echo "$prog: $spec already $type (policy default)"
		else
			echo "$prog: adding $spec -> $type"
			run semanage fcontext -a -t "$type" "$spec"
		fi
	fi
	if [[ -e "$dir" ]]; then
		run restorecon -R "$dir"
	else
		echo "$prog: $dir does not exist yet; it is labelled $type when created"
	fi
}

# 2 + 3. File contexts.
label_dir "$top_dir" rpm_ingestd_repo_t
label_dir "$spool_dir" rpm_ingestd_spool_t
for p in /usr/bin/rpm-ingestd /etc/rpm-ingestd /run/rpm-ingestd; do
	if [[ -e "$p" ]]; then
		run restorecon -R "$p"
	fi
done

# 4. TCP port.
if [[ -n "$tcp_port" ]]; then
	if [[ $dry_run -eq 0 ]] && semanage port -l -C | awk -v p="$tcp_port" '
		$1 == "rpm_ingestd_port_t" && $2 == "tcp" { for (i = 3; i <= NF; i++) { v = $i; sub(/,$/, "", v); if (v == p) f = 1 } }
		END { exit !f }'; then
		echo "$prog: tcp/$tcp_port already rpm_ingestd_port_t"
	elif [[ $dry_run -eq 1 ]]; then
		run semanage port -a -t rpm_ingestd_port_t -p tcp "$tcp_port"
	elif ! semanage port -a -t rpm_ingestd_port_t -p tcp "$tcp_port" 2>/dev/null; then
		# Defined already (by the base policy or a local rule): reassign.
		echo "$prog: tcp/$tcp_port already has a type; reassigning it to rpm_ingestd_port_t"
		run semanage port -m -t rpm_ingestd_port_t -p tcp "$tcp_port"
	else
		echo "$prog: labelled tcp/$tcp_port rpm_ingestd_port_t"
	fi
fi

echo "$prog: done. Check with: ls -Zd $top_dir $spool_dir; then restart: systemctl restart rpm-ingestd nginx"
