#!/usr/bin/env bash
# Writes the licence texts of everything linked into the gearbridge binary
# (the Go runtime and standard library, and each module its packages come
# from) to stdout: MIT and BSD ask that their notices travel with binary
# copies. make deb and make dist ship the result beside LICENSE.
set -euo pipefail
cd "$(dirname "$0")/.."

notice() { # name, directory
	local found=
	for f in "$2"/LICENSE* "$2"/LICENCE* "$2"/COPYING* "$2"/NOTICE*; do
		[ -f "$f" ] || continue
		found=1
		printf '================================================================\n%s (%s)\n================================================================\n\n' "$1" "${f##*/}"
		cat "$f"
		echo
	done
	[ -n "$found" ] || { echo "third-party-licenses: no licence file for $1 in $2" >&2; exit 1; }
}

echo "gearbridge is Apache-2.0 (LICENSE). It links the following, under their own licences."
echo
notice "Go (runtime and standard library) $(go env GOVERSION)" "$(go env GOROOT)"
# Modules whose packages are linked into the binary, for linux (the epoll
# loop uses golang.org/x/sys/unix there).
GOOS=linux go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}}@{{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/gearbridge |
	sort -u | while read -r mod dir; do
	notice "$mod" "$dir"
done
