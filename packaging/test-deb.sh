#!/usr/bin/env bash
# The package test (.ci/run runs it as root after make test): build the
# .deb, install it with dpkg -i, verify the unit, run the installed binary
# as the packaged user with the unit's own command line on a scratch
# directory, put a job through it with the gearman CLI, reinstall it (the
# upgrade path), and purge it, checking that nothing is left behind.
#
# systemd need not run as PID 1: `systemd-analyze verify` and
# `systemd-analyze security --offline=yes` read the unit file offline, and
# the server is started by hand (setpriv, with the unit's user and
# no_new_privs) instead of by systemctl.
#
# Usage: packaging/test-deb.sh [FILE.deb]   (default: make deb's output)
# TEST_DEB_SIGHUP=1 also checks that SIGHUP reopens the log file.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
step() { echo "test-deb: $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (it installs a package)"
for tool in dpkg systemd-analyze setpriv gearman gearadmin; do
	command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install systemd gearman-tools)"
done

deb=${1:-}
if [ -z "$deb" ]; then
	make deb
	deb=$(ls -t dist/gearbridge_*_"$(go env GOARCH)".deb | head -n1)
fi
[ -f "$deb" ] || fail "no package at $deb"

if dpkg -s gearbridge >/dev/null 2>&1; then
	step "purging a gearbridge left from before"
	dpkg --purge gearbridge
fi

scratch=$(mktemp -d)
pid=
worker=
cleanup() {
	[ -n "$worker" ] && kill "$worker" 2>/dev/null
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$scratch"
}
trap cleanup EXIT

step "dpkg -i $deb"
dpkg -i "$deb"
dpkg -s gearbridge | grep -q '^Status: install ok installed$' || fail "not installed"
getent passwd gearbridge >/dev/null || fail "no gearbridge user"
[ "$(getent passwd gearbridge | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the gearbridge user has a login shell"
unit=/usr/lib/systemd/system/gearbridge.service
# Everything the package lists is on disk, except what this system's dpkg
# is told to leave out (Debian's container images drop /usr/share/man).
mapfile -t excludes < <(sed -n 's/^path-exclude[= ]*//p' /etc/dpkg/dpkg.cfg.d/* 2>/dev/null)
excluded() {
	local g
	for g in "${excludes[@]}"; do [[ $1 == $g ]] && return 0; done
	return 1
}
files=0
while read -r f; do
	[ -d "$f" ] && continue
	files=$((files + 1))
	[ -e "$f" ] || excluded "$f" || fail "$f is listed by dpkg but missing"
done < <(dpkg -L gearbridge)
for f in /usr/bin/gearbridge "$unit" /etc/gearbridge/gearbridge.yaml /etc/default/gearbridge \
	/etc/logrotate.d/gearbridge /usr/share/doc/gearbridge/copyright; do
	[ -f "$f" ] || fail "$f is not installed"
done
dpkg -L gearbridge | grep -qx /usr/share/man/man1/gearbridge.1.gz || fail "no man page in the package"
[ "$(stat -c %a /etc/default/gearbridge)" = 600 ] || fail "/etc/default/gearbridge (tokens) is not 0600"
conffiles=$(dpkg-query -W -f='${Conffiles}' gearbridge)
for f in /etc/gearbridge/gearbridge.yaml /etc/default/gearbridge /etc/logrotate.d/gearbridge; do
	grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile"
done
if command -v deb-systemd-helper >/dev/null; then
	[ -L /etc/systemd/system/multi-user.target.wants/gearbridge.service ] || fail "the unit is not enabled"
fi
step "$files files installed, conffiles, user and enable link in place"

if [ -f /usr/share/man/man1/gearbridge.1.gz ] && command -v man >/dev/null; then
	# The page documents the flags the installed binary has.
	page=$(MANWIDTH=200 man -l /usr/share/man/man1/gearbridge.1.gz 2>&1)
	grep -q -- '--max-buffer-memory' <<<"$page" || fail "the man page lacks --max-buffer-memory"
fi

step "systemd-analyze verify $unit"
# Offline: it loads the unit, checks every directive, that ExecStart's
# binary is executable and that man:gearbridge(1) resolves.
# Where dpkg leaves man pages out, only that check is skipped.
man_check=yes
[ -e /usr/share/man/man1/gearbridge.1.gz ] || man_check=no
verify=$(systemd-analyze verify --man="$man_check" "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
if [ -n "$verify" ]; then fail "systemd-analyze verify warns: $verify"; fi
# The hardening stays where it is: exposure 2.0 or less (it is 1.5).
systemd-analyze security --offline=yes --threshold=20 "$unit" >"$scratch/security" 2>&1 ||
	{ cat "$scratch/security"; fail "the unit's exposure rose above 2.0"; }
for want in User=gearbridge StateDirectory=gearbridge ProtectSystem=strict NoNewPrivileges=yes LimitNOFILE=; do
	grep -q "^$want" "$unit" || fail "the unit lacks $want"
done
if command -v logrotate >/dev/null; then
	# --debug exits 0 even for an unknown directive; its "error:" lines tell.
	if ! logrotate --debug --state "$scratch/logrotate.state" /etc/logrotate.d/gearbridge >"$scratch/logrotate" 2>&1 ||
		grep -qi '^error' "$scratch/logrotate"; then
		cat "$scratch/logrotate"
		fail "logrotate rejects its snippet"
	fi
elif [ "${CI:-}" = true ]; then
	fail "logrotate is missing (apt-get install logrotate)"
fi

step "starting the unit's command line as gearbridge on $scratch"
# The unit's ExecStart, with its directories moved to the scratch
# directory and a free port, so that the flags it passes are tested too.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
mkdir -p "$scratch/lib" "$scratch/log"
chown gearbridge:gearbridge "$scratch/lib" "$scratch/log"
chmod 0755 "$scratch"
cmdline=${exec_start//\/var\/lib\/gearbridge/$scratch/lib}
cmdline=${cmdline//\/var\/log\/gearbridge/$scratch/log}
cmdline=${cmdline//\$GEARBRIDGE_OPTS/--port 0 --http 127.0.0.1:0}
read -r -a argv <<<"$cmdline"
setpriv --reuid=gearbridge --regid=gearbridge --init-groups --no-new-privs --inh-caps=-all \
	"${argv[@]}" &
pid=$!
log=$scratch/log/gearbridge.log
port=
for _ in $(seq 1 300); do
	kill -0 "$pid" 2>/dev/null || { cat "$log" 2>/dev/null; fail "gearbridge exited at start"; }
	port=$(sed -n 's/.*msg="gearbridge listening" addr=[^ ]*:\([0-9]*\) .*/\1/p' "$log" 2>/dev/null | head -n1 || true)
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$log"; fail "gearbridge did not listen within 30s"; }
[ "$(stat -c %U "$scratch/lib/gearbridge.db")" = gearbridge ] || fail "the database is not the service user's"
[ "$(stat -c %U "/proc/$pid")" = gearbridge ] || fail "gearbridge does not run as gearbridge"
step "listening on port $port"

# One foreground job through a gearman worker, and one background job that
# stays queued (no worker for it).
gm=(-h 127.0.0.1 -p "$port")
timeout 30 gearman "${gm[@]}" -w -c 1 -f upper -- tr a-z A-Z &
worker=$!
for _ in $(seq 1 300); do
	gearadmin "${gm[@]}" --status | grep -q '^upper	0	0	1$' && break
	sleep 0.1
done
got=$(timeout 30 gearman "${gm[@]}" -f upper gearbridge) || fail "gearman client failed"
[ "$got" = GEARBRIDGE ] || fail "job result '$got', want GEARBRIDGE"
wait "$worker" || fail "gearman worker failed"
worker=
timeout 10 gearman "${gm[@]}" -b -f later payload || fail "background submit failed"
gearadmin "${gm[@]}" --status | grep -q '^later	1	0	0$' || fail "the background job is not queued"
if [ "${TEST_DEB_SIGHUP:-0}" = 1 ]; then
	# What logrotate does: move the file, send SIGHUP; the server writes a
	# new file and keeps serving. (Opt-in until SIGHUP log reopen is merged:
	# before that, SIGHUP ends the process.)
	mv "$log" "$log.1"
	kill -HUP "$pid"
	for _ in $(seq 1 100); do
		[ -e "$log" ] && break
		kill -0 "$pid" 2>/dev/null || fail "SIGHUP ended gearbridge"
		sleep 0.1
	done
	[ -e "$log" ] || fail "no new log file 10s after SIGHUP"
	[ "$(stat -c %U "$log")" = gearbridge ] || fail "the reopened log is not the service user's"
	gearadmin "${gm[@]}" --status | grep -q '^later	1	0	0$' || fail "the queue is not served after SIGHUP"
	step "SIGHUP reopened the log file"
fi
kill "$pid"
wait "$pid" || fail "gearbridge did not stop cleanly on SIGTERM"
pid=
/usr/bin/gearbridge check --db "$scratch/lib/gearbridge.db" >"$scratch/check" 2>&1 ||
	{ cat "$scratch/check"; fail "gearbridge check on the database it left"; }
step "a job ran, a background job was stored, the server stopped cleanly"

step "dpkg -i again (the upgrade path)"
echo "# a local change" >>/etc/gearbridge/gearbridge.yaml
dpkg -i "$deb"
grep -q '^# a local change$' /etc/gearbridge/gearbridge.yaml || fail "an upgrade overwrote the changed config"

step "dpkg --purge gearbridge"
# What the running service would have made (StateDirectory, LogsDirectory).
install -d -o gearbridge -g gearbridge /var/lib/gearbridge /var/log/gearbridge
cp "$scratch/lib/gearbridge.db" /var/lib/gearbridge/
touch /var/log/gearbridge/gearbridge.log /var/log/gearbridge/gearbridge.log.1.gz
dpkg --purge gearbridge
if dpkg -s gearbridge >/dev/null 2>&1; then fail "still known to dpkg after purge"; fi
for f in /usr/bin/gearbridge "$unit" /etc/systemd/system/gearbridge.service /etc/gearbridge /etc/default/gearbridge /etc/logrotate.d/gearbridge \
	/usr/share/man/man1/gearbridge.1.gz /usr/share/doc/gearbridge /var/lib/gearbridge /var/log/gearbridge \
	/etc/systemd/system/multi-user.target.wants/gearbridge.service /var/lib/systemd/deb-systemd-helper-enabled/gearbridge.service.dsh-also; do
	[ ! -e "$f" ] || fail "$f is left after purge"
done
step "ok"
