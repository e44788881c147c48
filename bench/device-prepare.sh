#!/usr/bin/env bash
# bench/device-prepare.sh: everything the many-core group needs, built here
# for a machine that has no Go, no C compiler and no network (a lent 16-core
# machine): gearbridge, the two load generators, and gearmand with the
# shared libraries it loads. Writes them to .devbench/ (ignored by git).
# There, run:
#
#   GEARMAND=.devbench/gearmand BENCH_BIN_DIR=.devbench BENCH_ONLY=scale bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=.devbench
gearmand=${GEARMAND:-/usr/sbin/gearmand}
rm -rf "$out"
mkdir -p "$out/lib"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/gearbridge" ./cmd/gearbridge
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/loadgen" ./bench/loadgen
cc -O2 -pthread -o "$out/cload" bench/cload/cload.c
cp "$gearmand" "$out/gearmand.bin"
# Every library gearmand loads but the C library itself and the loader,
# which the other machine has (and which must match its kernel's ABI).
ldd "$gearmand" | awk '$3 ~ /^\// { print $3 }' | while read -r lib; do
	case $(basename "$lib") in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) ;;
	*) cp -L "$lib" "$out/lib/" ;;
	esac
done
# A wrapper that keeps the process ID (exec): bench/run.sh reads the
# server's CPU time from /proc/PID.
cat >"$out/gearmand" <<'WRAP'
#!/bin/sh
d=$(dirname "$0")
LD_LIBRARY_PATH="$d/lib" exec "$d/gearmand.bin" "$@"
WRAP
chmod +x "$out/gearmand"
"$out/gearmand" --version
du -sh "$out"
