#!/usr/bin/env bash
# bench/run.sh: gearbridge against C gearmand 1.1.20, scenario by scenario.
#
# Builds gearbridge and the load generators, starts every server fresh on
# free loopback ports for every run (so no run sees another's queue), and
# prints each pair side by side with the ratio gearbridge/gearmand (above 1
# means gearbridge is faster). All processes are stopped on exit.
#
# The in-memory scenarios are driven by bench/cload, a C client with one
# blocking socket per connection: on 2 cores the client shares the CPUs
# with the server, and a lean client leaves them to the server. Durable
# scenarios use bench/loadgen (Go), which reads fsync counts from /metrics.
# Every run also reports the server's own CPU time per job, read from
# /proc: the efficiency of the server whatever the client costs.
#
# A shared VM moves by 10-20% from one minute to the next, so every
# in-memory pair runs BENCH_ROUNDS times, gearbridge and gearmand taking
# turns, and the summary shows the medians, their ratio and the range of
# the per-round ratios.
#
# Knobs (environment): BENCH_JOBS (background submits, default 100000),
# BENCH_DRAIN_JOBS (50000), BENCH_RT_JOBS (foreground round trips, 30000),
# BENCH_IDLE_JOBS (20000), BENCH_DURABLE_JOBS (20000), BENCH_DURATION (cap per
# run, 15s), BENCH_ROUNDS (3), BENCH_ONLY (groups to run, space-separated:
# submit-bg drain roundtrip idle-workers durable bridge; default all),
# BENCH_SCHED (cload's scheduling policy: batch,
# the default, or other; see bench/cload/cload.c), GEARMAND (/usr/sbin/gearmand),
# BENCH_GB_ARGS (extra flags for gearbridge serve, e.g. --grab-hold 10ms),
# BENCH_BIN_DIR (use the binaries there instead of building them; see
# bench/device-prepare.sh).
#
# BENCH_ONLY=scale is the many-core group (not in the default set): the
# scenarios at 16 and 64 clients and 2,000 idle workers, gearbridge with 1
# event loop and with SCALE_LOOPS (default: one per core) against gearmand
# --threads=8 and --threads=16, with the clients' default scheduling (a
# user's clients do not run under SCHED_BATCH), a scaling curve of the
# 64+64 round trip over 1, 2, 4, 8 and 16 loops, and durable pipelined
# submit against in-memory. Knobs: SCALE_JOBS (200000), SCALE_DURATION (3,
# seconds per run), SCALE_PROFILE_DIR (write a CPU and a lock-contention
# profile of each point of the curve there).
set -euo pipefail
cd "$(dirname "$0")/.."

GEARMAND=${GEARMAND:-/usr/sbin/gearmand}
JOBS=${BENCH_JOBS:-100000}
DRAIN_JOBS=${BENCH_DRAIN_JOBS:-50000}
RT_JOBS=${BENCH_RT_JOBS:-30000}
IDLE_JOBS=${BENCH_IDLE_JOBS:-20000}
DURABLE_JOBS=${BENCH_DURABLE_JOBS:-20000}
DURATION=${BENCH_DURATION:-15s}
ROUNDS=${BENCH_ROUNDS:-3}
SCHED=${BENCH_SCHED:-batch}

# want GROUP: whether BENCH_ONLY (space-separated groups; empty: all)
# selects GROUP.
want() { [[ -z ${BENCH_ONLY:-} && $1 != scale || " ${BENCH_ONLY:-} " == *" $1 "* ]]; }
groups="submit-bg drain roundtrip idle-workers durable bridge scale"
for g in ${BENCH_ONLY:-}; do
	if [[ " $groups " != *" $g "* ]]; then
		echo "bench: unknown BENCH_ONLY group '$g' (groups: $groups)" >&2
		exit 2
	fi
done
# Every group but the bridge runs servers against gearmand.
servers=false
for g in submit-bg drain roundtrip idle-workers durable scale; do
	want "$g" && servers=true
done

if $servers && [[ ! -x $GEARMAND ]]; then
	echo "bench: $GEARMAND not found (apt-get install gearman-job-server)" >&2
	exit 1
fi

tmp=$(mktemp -d)
pid=""
cleanup() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if $servers && [[ -n ${BENCH_BIN_DIR:-} ]]; then
	# Built beforehand (bench/device-prepare.sh), for a machine that has
	# neither Go nor a C compiler.
	echo "using gearbridge, loadgen and cload from $BENCH_BIN_DIR"
	cp "$BENCH_BIN_DIR/gearbridge" "$BENCH_BIN_DIR/loadgen" "$BENCH_BIN_DIR/cload" "$tmp/"
elif $servers; then
	echo "building gearbridge, loadgen and cload..."
	go build -o "$tmp/gearbridge" ./cmd/gearbridge
	go build -o "$tmp/loadgen" ./bench/loadgen
	cc -O2 -pthread -o "$tmp/cload" bench/cload/cload.c
fi

# wait_port PORT: poll until the server accepts connections (10 s), or fail
# at once if it died (for example, the port was taken meanwhile).
wait_port() {
	local deadline=$((SECONDS + 10))
	while ((SECONDS < deadline)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.02
	done
	return 1
}

# start KIND: start a fresh server; sets addr, pid and metrics.
start() {
	local kind=$1 port http attempt
	for attempt in 1 2 3; do
		port=$("$tmp/loadgen" --free-port)
		http=$("$tmp/loadgen" --free-port)
		metrics=""
		rm -f "$tmp/gb.db" "$tmp/gm.sqlite"
		case $kind in
		gb-none | gb-sync)
			"$tmp/gearbridge" serve --listen 127.0.0.1 --port "$port" --http "127.0.0.1:$http" \
				--durability "${kind#gb-}" --db "$tmp/gb.db" --log-file "$tmp/$kind.log" --verbose ERROR ${BENCH_GB_ARGS:-} &
			metrics="http://127.0.0.1:$http/metrics"
			;;
		gb-none-loops-* | gb-sync-loops-*) # gb-none-loops-N: N event loops
			local d=${kind#gb-}
			"$tmp/gearbridge" serve --listen 127.0.0.1 --port "$port" --http "127.0.0.1:$http" \
				--durability "${d%%-*}" --event-loops "${kind##*-}" --db "$tmp/gb.db" --log-file "$tmp/gb.log" \
				--verbose ERROR ${BENCH_GB_ARGS:-} &
			metrics="http://127.0.0.1:$http/metrics"
			;;
		gm-t[1-9]*) # gm-tN: gearmand --threads=N
			"$GEARMAND" --listen=127.0.0.1 --port="$port" --log-file="$tmp/gm.log" \
				--pid-file="$tmp/gm.pid" --config-file=/dev/null --threads="${kind#gm-t}" &
			;;
		gm)
			"$GEARMAND" --listen=127.0.0.1 --port="$port" --log-file="$tmp/$kind.log" \
				--pid-file="$tmp/gm.pid" --config-file=/dev/null &
			;;
		gm-t0)
			"$GEARMAND" --listen=127.0.0.1 --port="$port" --log-file="$tmp/$kind.log" \
				--pid-file="$tmp/gm.pid" --config-file=/dev/null --threads=0 &
			;;
		gm-sqlite)
			"$GEARMAND" --listen=127.0.0.1 --port="$port" --log-file="$tmp/$kind.log" \
				--pid-file="$tmp/gm.pid" --config-file=/dev/null -q libsqlite3 --libsqlite3-db="$tmp/gm.sqlite" &
			;;
		esac
		pid=$!
		if wait_port "$port"; then
			addr="127.0.0.1:$port"
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	echo "bench: cannot start $kind" >&2
	tail -20 "$tmp/$kind.log" >&2 || true
	return 1
}

stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}

# cpu_ticks: the server's user+system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# run KIND SCENARIO ARGS...: one load generator run against a fresh server;
# prints the result line (plus the server's CPU per job) and stores it in
# $line. CLIENT selects the generator: cload (default) or loadgen.
run() {
	local kind=$1 scenario=$2
	shift 2
	start "$kind"
	local t0 t1 profiler=""
	if ((${#profile_at[@]})) && [[ -n $metrics ]]; then
		local base=${metrics%/metrics} dir=${profile_at[0]} tag=${profile_at[1]}
		(
			sleep 0.5
			"$tmp/loadgen" --get "$base/debug/pprof/mutex?seconds=1" >"$dir/mutex-$tag.prof" &
			"$tmp/loadgen" --get "$base/debug/pprof/profile?seconds=1" >"$dir/cpu-$tag.prof" &
			wait
		) &
		profiler=$!
	fi
	t0=$(cpu_ticks)
	if [[ ${CLIENT:-cload} == loadgen ]]; then
		local extra=()
		[[ -n $metrics ]] && extra=(--metrics "$metrics")
		line=$(timeout 300 "$tmp/loadgen" --server "$addr" --label "$kind" --scenario "$scenario" \
			--duration "$DURATION" "${extra[@]}" "$@")
	else
		line=$(timeout 300 "$tmp/cload" --server "$addr" --label "$kind" --scenario "$scenario" \
			--duration "${DURATION%s}" --sched "$SCHED" "$@")
	fi
	t1=$(cpu_ticks)
	[[ -n $profiler ]] && wait "$profiler"
	line+=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$(field "$line" jobs)" \
		'BEGIN { if (n > 0) printf " server_cpu_us_per_job=%.1f", t / hz * 1e6 / n }')
	stop
	echo "  $line"
}

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

summary=()
profile_at=() # DIR TAG: run takes profiles of gearbridge into DIR

# median LINE...: the line with the median jobs_per_s.
median() {
	local l
	for l in "$@"; do
		printf '%s\t%s\n' "$(field "$l" jobs_per_s)" "$l"
	done | sort -n | awk -F'\t' '{ a[NR] = $2 } END { print a[int((NR + 1) / 2)] }'
}

# pair TITLE SCENARIO ARGS...: the scenario against gearbridge (in memory)
# and C gearmand as installed (the reference), BENCH_ROUNDS times each in
# turn, then once against C gearmand --threads=0 (its fastest setting on a
# small machine, for information).
pair() {
	local title=$1
	shift
	echo "$title"
	local gbs=() gms=() ratios=() r
	for ((r = 1; r <= ROUNDS; r++)); do
		run gb-none "$@"
		gbs+=("$line")
		run gm "$@"
		gms+=("$line")
		ratios+=("$(ratio "$(field "${gbs[-1]}" jobs_per_s)" "$(field "${gms[-1]}" jobs_per_s)")")
	done
	local gb gm
	gb=$(median "${gbs[@]}")
	gm=$(median "${gms[@]}")
	run gm-t0 "$@"
	local t0=$line
	local s
	s=$(printf '%-44s gearbridge %8s/s  gearmand %8s/s  ratio %s   (gearmand -t0 %s/s, ratio %s)' "$title" \
		"$(field "$gb" jobs_per_s)" "$(field "$gm" jobs_per_s)" "$(ratio "$(field "$gb" jobs_per_s)" "$(field "$gm" jobs_per_s)")" \
		"$(field "$t0" jobs_per_s)" "$(ratio "$(field "$gb" jobs_per_s)" "$(field "$t0" jobs_per_s)")")
	s+=$(printf '\n%-44s ratio per round: %s' "" "$(printf '%s\n' "${ratios[@]}" | sort -n | paste -sd' ')")
	s+=$(printf '\n%-44s server CPU per job %s vs %s us: %sx less' "" "$(field "$gb" server_cpu_us_per_job)" \
		"$(field "$gm" server_cpu_us_per_job)" "$(ratio "$(field "$gm" server_cpu_us_per_job)" "$(field "$gb" server_cpu_us_per_job)")")
	if [[ -n $(field "$gb" p50_ms) ]]; then
		s+=$(printf '\n%-44s p50 %s vs %s ms, p99 %s vs %s ms' "" "$(field "$gb" p50_ms)" "$(field "$gm" p50_ms)" "$(field "$gb" p99_ms)" "$(field "$gm" p99_ms)")
	fi
	if [[ -n $(field "$gb" noops_per_job) ]]; then
		s+=$(printf '\n%-44s NOOPs per job %s vs %s' "" "$(field "$gb" noops_per_job)" "$(field "$gm" noops_per_job)")
	fi
	summary+=("$s")
}

# durable TITLE SCENARIO ARGS...: gearbridge --durability sync against
# gearbridge --durability none and gearmand -q libsqlite3.
durable() {
	local title=$1
	shift
	echo "$title"
	run gb-sync "$@"
	local sync=$line
	run gb-none "$@"
	local none=$line
	run gm-sqlite "$@"
	local gm=$line
	local s
	s=$(printf '%-44s gearbridge sync %7s/s  none %7s/s  gearmand sqlite %7s/s\n%-44s sync/sqlite %s  sync/none %s  fsyncs per job %s' "$title" \
		"$(field "$sync" jobs_per_s)" "$(field "$none" jobs_per_s)" "$(field "$gm" jobs_per_s)" "" \
		"$(ratio "$(field "$sync" jobs_per_s)" "$(field "$gm" jobs_per_s)")" \
		"$(ratio "$(field "$sync" jobs_per_s)" "$(field "$none" jobs_per_s)")" \
		"$(field "$sync" fsyncs_per_job)")
	summary+=("$s")
}

want submit-bg && pair "background submit, 4 clients" submit-bg --clients 4 --jobs "$JOBS"
want drain && pair "drain $DRAIN_JOBS queued jobs, 4 workers" drain --workers 4 --jobs "$DRAIN_JOBS"
want roundtrip && pair "foreground round trip, 4 clients, 4 workers" roundtrip --clients 4 --workers 4 --jobs "$RT_JOBS"
want idle-workers && pair "500 idle workers on 50 functions, 4 clients" idle-workers --idle 500 --functions 50 --clients 4 --jobs "$IDLE_JOBS"
export CLIENT=loadgen
if want durable; then
	durable "durable background submit, 4 clients" submit-bg --clients 4 --jobs "$DURABLE_JOBS"
	durable "durable background submit, 16 clients" submit-bg --clients 16 --jobs "$DURABLE_JOBS"
	durable "durable pipelined submit, 1 connection" submit-pipelined --conns 1 --jobs "$DURABLE_JOBS"
	durable "durable pipelined submit, 4 connections" submit-pipelined --conns 4 --jobs "$DURABLE_JOBS"
fi

# scale_pair TITLE SCENARIO ARGS...: the many-core comparison, once per
# server: gearbridge with 1 and with SCALE_LOOPS event loops, gearmand with
# 8 and 16 threads; the ratio is the better gearbridge over the better
# gearmand.
scale_pair() {
	local title=$1
	shift
	echo "$title"
	local k best_gb=0 best_gm=0 gb_line="" cells=()
	for k in gb-none-loops-1 "gb-none-loops-$SCALE_LOOPS" gm-t8 gm-t16; do
		run "$k" "$@"
		local rate
		rate=$(field "$line" jobs_per_s)
		local cell noops
		cell="$k $rate/s ($(field "$line" server_cpu_us_per_job) us/job"
		noops=$(field "$line" noops_per_job)
		[[ -n $noops ]] && cell+=", $noops NOOP/job"
		cells+=("$cell)")
		if [[ $k == gb-* ]]; then
			(($(awk -v a="$rate" -v b="$best_gb" 'BEGIN{print (a > b)}'))) && best_gb=$rate
		else
			(($(awk -v a="$rate" -v b="$best_gm" 'BEGIN{print (a > b)}'))) && best_gm=$rate
		fi
	done
	local s
	s=$(printf '%-52s best gearbridge %s/s  best gearmand %s/s  ratio %s' "$title" "$best_gb" "$best_gm" "$(ratio "$best_gb" "$best_gm")")
	s+=$(printf '\n%-52s %s' "" "$(printf '%s; ' "${cells[@]}")")
	summary+=("$s")
}

if want scale; then
	SCALE_LOOPS=${SCALE_LOOPS:-$(nproc)}
	SCALE_JOBS=${SCALE_JOBS:-200000}
	saved=("$SCHED" "$DURATION")
	SCHED=other DURATION=${SCALE_DURATION:-3}s
	echo "many-core group: $(nproc) CPUs, gearbridge 1 and $SCALE_LOOPS loops, gearmand -t8 and -t16, default scheduling"
	summary+=("many-core group ($(nproc) CPUs, clients with default scheduling, one run per server, ${SCALE_JOBS} jobs or ${SCALE_DURATION:-3} s):")
	CLIENT=cload scale_pair "background submit, 16 clients" submit-bg --clients 16 --jobs "$SCALE_JOBS"
	CLIENT=loadgen scale_pair "background submit, 64 clients x 16 in flight" submit-pipelined --conns 64 --window 1024 --jobs "$SCALE_JOBS"
	CLIENT=cload scale_pair "round trip, 16 clients + 16 workers" roundtrip --clients 16 --workers 16 --jobs "$SCALE_JOBS"
	CLIENT=cload scale_pair "round trip, 64 clients + 64 workers" roundtrip --clients 64 --workers 64 --jobs "$SCALE_JOBS"
	CLIENT=cload scale_pair "drain, 16 workers" drain --workers 16 --jobs "$SCALE_JOBS"
	CLIENT=cload scale_pair "2,000 idle workers on 100 functions, 16 clients" idle-workers --idle 2000 --functions 100 --clients 16 --jobs "$SCALE_JOBS"
	curve=""
	for loops in 1 2 4 8 16; do
		if [[ -n ${SCALE_PROFILE_DIR:-} ]]; then
			# A CPU and a lock-contention profile of each point of the
			# curve, taken in the middle of the run.
			mkdir -p "$SCALE_PROFILE_DIR"
			saved_args=${BENCH_GB_ARGS:-}
			BENCH_GB_ARGS="$saved_args --pprof"
			profile_at=("$SCALE_PROFILE_DIR" "$loops")
		fi
		# Enough jobs to last SCALE_DURATION, so that a profile sees load.
		CLIENT=cload run "gb-none-loops-$loops" roundtrip --clients 64 --workers 64 --jobs "$((SCALE_JOBS * 10))"
		curve+="$loops: $(field "$line" jobs_per_s)/s ($(field "$line" server_cpu_us_per_job) us/job)  "
		if [[ -n ${SCALE_PROFILE_DIR:-} ]]; then
			BENCH_GB_ARGS=$saved_args
			profile_at=()
		fi
	done
	summary+=("$(printf '%-52s %s' "round trip 64+64 by event loops" "$curve")")
	CLIENT=loadgen run "gb-sync-loops-$SCALE_LOOPS" submit-pipelined --conns 64 --window 1024 --jobs "$SCALE_JOBS"
	sync=$(field "$line" jobs_per_s)
	CLIENT=loadgen run "gb-none-loops-$SCALE_LOOPS" submit-pipelined --conns 64 --window 1024 --jobs "$SCALE_JOBS"
	summary+=("$(printf '%-52s sync %s/s  none %s/s  sync/none %s' "durable pipelined submit, 64 x 16 in flight" "$sync" "$(field "$line" jobs_per_s)" "$(ratio "$sync" "$(field "$line" jobs_per_s)")")")
	SCHED=${saved[0]} DURATION=${saved[1]}
fi

if $servers; then
	echo
	echo "summary (ratio > 1: gearbridge faster; $(nproc) CPUs, $ROUNDS rounds, cload --sched $SCHED, $(date -u +%Y-%m-%dT%H:%MZ))"
	printf '%s\n' "${summary[@]}"
fi

if want bridge; then
	echo
	echo "Jenkins bridge (bench/bridgebench: emulated masters, zero-length builds)"
	go run ./bench/bridgebench
fi
