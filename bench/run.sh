#!/usr/bin/env bash
# svc's benchmarks: each figure a pair of servers alternated A B A B A B on fresh processes
# (bench/pair.py driving bench/load.py), quoted as the median ratio of the rounds.
#
#   bash bench/run.sh setup                      # wrk, a venv with svc and the ceilings' deps
#   bash bench/run.sh get put connect fanout lag # svc on memory against bare aiohttp
#   bash bench/run.sh memory fanout10k           # bytes per idle WebSocket; 10,000 members
#   bash bench/run.sh private-rooms memory-auth  # room tokens' join cost; auth on's bytes per socket
#   bash bench/run.sh get-pg put-pg connect-pg   # svc on Postgres against aiohttp + aiopg
#   bash bench/run.sh reconnect-pg               # 2,000 members drop and come back: Postgres vs memory
#   bash bench/run.sh interleaved-get interleaved-get-pg interleaved-put-pg  # the same ratios,
#                                                # both servers up, alternating 2 s bursts
#   bash bench/run.sh interleaved-get-asyncio      # svc on uvloop (its default) against svc on asyncio
#   bash bench/run.sh put-pg-brokers             # PUT on Postgres: Redis broker against Postgres broker
#   bash bench/run.sh put-pg-redis-vs-memory     # ... and against no broker (memory://)
#   bash bench/run.sh put-pg-redis-vs-aiopg      # ... and against the aiohttp + aiopg ceiling
#   bash bench/run.sh put-pg-history-redis put-pg-history-pg  # PUT on Postgres, ROOM_HISTORY=100
#                                                # against 0, Redis / Postgres broker, 1,000 present
#   bash bench/run.sh setup-base put-pg-history-vs-base  # ... Postgres broker, history on, against
#                                                # BASE_REF (default main) on its own database
#   bash bench/run.sh fanout-two                 # 2,000 members over two processes (Redis) vs one
#   bash bench/run.sh workers                    # WORKERS=2 against WORKERS=1: PUT and GET on
#                                                # Postgres + Redis, bursts alternated, not pinned
#   bash bench/run.sh workers-cost               # ... and the counts behind it: syscalls, loop
#                                                # wake-ups, publish batches per PUT (workers_cost.py)
#   bash bench/run.sh idle100k                   # 100,000 idle WebSockets in one process, svc vs
#                                                # bare aiohttp (idle_sockets.py: see its section)
#   bash bench/run.sh setup-peers peer-socketio  # regression guard: svc's fan-out to 2,000 members
#                                                # <= 0.3x python-socketio's, memory per member <= 0.5x
#   bash bench/run.sh peer-get peer-put peer-connect peer-fanout peer-lag  # against the replaced
#                                                # service, when its kit is at $PEER_KIT
#
# ROUNDS=5 for more rounds.  BENCH_PORT=28080 (and the next port) if 18080 is taken.  Postgres figures use $BENCH_PG (a database of their own).
# Raw JSONL and console output land in $BENCH_WORK/results (default /tmp/bench/results).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/bench}
ROUNDS=${ROUNDS:-3}
BURSTS=${BURSTS:-10}                         # interleaved-*: 2 s bursts per side
PEER_KIT=${PEER_KIT:-}                       # the replaced service's bench kit (peer/ inside)
BENCH_PG=${BENCH_PG:-postgresql://postgres@127.0.0.1:5432/svc_bench}
CEILING_PG=${CEILING_PG:-postgresql://postgres@127.0.0.1:5432/ceiling_bench}
BENCH_REDIS=${BENCH_REDIS:-redis://127.0.0.1:6379/9?prefix=bench}
VENV=$WORK/venv-svc
PY=$VENV/bin/python
RESULTS=$WORK/results

svc=(--a-name svc --a "$PY -m svc" --a-env BCRYPT_ROUNDS=12)
# The ceilings run on uvloop, as svc does by default (EVENT_LOOP).
bare=(--b-name bare --b "$PY $HERE/ceilings/bare.py --port {port} --uvloop")
pgceil=(--b-name aiopg --b "$PY $HERE/ceilings/pg.py --port {port} --dsn $CEILING_PG --uvloop")
peer=(--b-name peer --b "$WORK/venv-peer/bin/uvicorn app:app --host 127.0.0.1 --port {port}")

pair() {  # pair NAME SCENARIO ARGS... [-- LOAD ARGS]
    local name=$1 scenario=$2; shift 2
    mkdir -p "$RESULTS"
    echo "== $name"
    "$PY" "$HERE/pair.py" --scenario "$scenario" --rounds "$ROUNDS" --out "$RESULTS/$name.jsonl" "$@" \
        | tee "$RESULTS/$name.txt"
}

interleave() {  # interleave NAME SCENARIO ARGS...: both servers up, bursts alternated
    local name=$1 scenario=$2; shift 2
    mkdir -p "$RESULTS"
    echo "== $name"
    "$PY" "$HERE/interleave.py" --scenario "$scenario" --bursts "$BURSTS" --out "$RESULTS/$name.jsonl" "$@" \
        | tee "$RESULTS/$name.txt"
}

need_peer() {
    [ -n "$PEER_KIT" ] && [ -d "$PEER_KIT/peer" ] || { echo "set PEER_KIT to the replaced service's kit" >&2; exit 2; }
    [ -x "$WORK/venv-peer/bin/uvicorn" ] || {
        python3 -m venv "$WORK/venv-peer" && "$WORK/venv-peer/bin/pip" install -q -r "$PEER_KIT/peer/requirements.txt"; }
    peer+=(--b-env "PYTHONPATH=$PEER_KIT/peer")
}

createdb_if_missing() {  # createdb_if_missing URL
    local name=${1##*/}
    psql "${1%/*}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
        || psql "${1%/*}/postgres" -qc "CREATE DATABASE $name"
}

for section in "$@"; do
    # Away from the checkout: `python -m svc` must import the snapshot installed by setup,
    # not the working tree in the current directory.
    mkdir -p "$WORK" && cd "$WORK"
    case $section in
    setup)
        command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
        python3 -m venv "$VENV"
        # A copy of the committed tree, so edits made while a benchmark runs cannot change it.
        rm -rf "$WORK/svc-src" && mkdir -p "$WORK" && git -C "$REPO" archive --prefix=svc-src/ HEAD | tar -x -C "$WORK"
        "$VENV/bin/pip" install -q "$WORK/svc-src" uvloop
        ;;
    setup-base)  # another commit of svc (BASE_REF, default main) in a virtualenv of its own
        python3 -m venv "$WORK/venv-base"
        rm -rf "$WORK/base-src" && git -C "$REPO" archive --prefix=base-src/ "${BASE_REF:-main}" | tar -x -C "$WORK"
        "$WORK/venv-base/bin/pip" install -q "$WORK/base-src" uvloop
        ;;
    setup-peers)  # the python-socketio peer (bench/peers/socketio) in a virtualenv of its own
        python3 -m venv "$WORK/venv-socketio"
        "$WORK/venv-socketio/bin/pip" install -q -r "$HERE/peers/socketio/requirements.txt"
        ;;
    peer-socketio)
        # One update to 2,000 members, svc against the python-socketio peer; exits 1 when svc
        # is not at <= 0.3x its last delivery or <= 0.5x its memory per member.
        [ -x "$WORK/venv-socketio/bin/python" ] || { echo "run: bash bench/run.sh setup-peers" >&2; exit 2; }
        ulimit -n 20000
        pair fanout-svc-vs-socketio fanout "${svc[@]}" --b-name socketio \
            --b "$WORK/venv-socketio/bin/python $HERE/peers/socketio/app.py --host 127.0.0.1 --port {port}" \
            --b-load=--protocol=socketio --require last_delivery_ms=0.3 --require rss_per_member=0.5 \
            -- --clients 2000 --settle 3
        ;;
    get|put)        pair "$section-svc-vs-bare" "$section" "${svc[@]}" "${bare[@]}" ;;
    connect)        ulimit -n 20000; pair connect-svc-vs-bare connect "${svc[@]}" "${bare[@]}" -- --clients 2000 ;;
    fanout)         ulimit -n 20000; pair fanout-svc-vs-bare fanout "${svc[@]}" "${bare[@]}" -- --clients 2000 ;;
    fanout10k)      ulimit -n 20000; pair fanout10k-svc-vs-bare fanout "${svc[@]}" "${bare[@]}" -- --clients 10000 --settle 3 ;;
    private-rooms)  # 2,000 joins to a private room against a public one, auth on for both
        ulimit -n 20000; mkdir -p "$RESULTS"; echo "== private-rooms"
        "$PY" "$HERE/private_rooms.py" --clients 2000 --rounds "$ROUNDS" | tee "$RESULTS/private-rooms.txt"
        ;;
    memory-auth)  # bytes per idle WebSocket: auth off, on (tokens in the first frame), on (?token=)
        ulimit -n 20000; mkdir -p "$RESULTS"; echo "== memory-auth"
        for round in $(seq "$ROUNDS"); do
            "$PY" "$HERE/memory_per_socket.py" --no-trace
            "$PY" "$HERE/memory_per_socket.py" --no-trace --auth=frame
            "$PY" "$HERE/memory_per_socket.py" --no-trace --auth=url
        done | tee "$RESULTS/memory-auth.txt"
        ;;
    memory)
        # RSS per idle WebSocket (2,000 in one room), svc and bare alternated; the server runs
        # in-process, so run it again without --no-trace to see where the bytes go.
        ulimit -n 20000; mkdir -p "$RESULTS"; echo "== memory"
        for round in $(seq "$ROUNDS"); do
            "$PY" "$HERE/memory_per_socket.py" --no-trace
            "$PY" "$HERE/memory_per_socket.py" --no-trace --bare
        done | tee "$RESULTS/memory-svc-vs-bare.txt"
        ;;
    get-pg|put-pg)
        createdb_if_missing "$BENCH_PG"; createdb_if_missing "$CEILING_PG"
        pair "${section%-pg}-pg-svc-vs-aiopg" "${section%-pg}" "${svc[@]}" --a-env DATABASE_URL=$BENCH_PG "${pgceil[@]}" \
            -- --users 1000
        ;;
    interleaved-get|interleaved-put)  # svc on memory against bare aiohttp, bursts alternated
        interleave "$section-svc-vs-bare" "${section#interleaved-}" "${svc[@]}" "${bare[@]}" ;;
    interleaved-get-asyncio|interleaved-put-asyncio)  # svc on uvloop against svc on asyncio's loop
        scenario=${section#interleaved-}; scenario=${scenario%-asyncio}
        interleave "interleaved-$scenario-uvloop-vs-asyncio" "$scenario" "${svc[@]}" \
            --a-name svc-uvloop --a-env EVENT_LOOP=uvloop --b-name svc-asyncio --b "$PY -m svc" \
            --b-env BCRYPT_ROUNDS=12 --b-env EVENT_LOOP=asyncio
        ;;
    interleaved-get-pg|interleaved-put-pg)  # svc on Postgres against aiohttp + aiopg, the same way
        createdb_if_missing "$BENCH_PG"; createdb_if_missing "$CEILING_PG"
        scenario=${section#interleaved-}; scenario=${scenario%-pg}
        interleave "$section-svc-vs-aiopg" "$scenario" "${svc[@]}" --a-env DATABASE_URL=$BENCH_PG "${pgceil[@]}"
        ;;
    connect-pg|reconnect-pg)
        ulimit -n 20000; createdb_if_missing "$BENCH_PG"
        pair "$section-vs-memory" "${section%-pg}" "${svc[@]}" --a-env DATABASE_URL=$BENCH_PG \
            --b-name svc-memory --b "$PY -m svc" -- --clients 2000
        ;;
    put-pg-brokers|put-pg-redis-vs-memory)  # Postgres storage; Redis broker (A) against the
        # Postgres broker (the default), or against no broker at all (memory://, one process)
        createdb_if_missing "$BENCH_PG"
        other=(--b-name svc-pg-broker --b-env DATABASE_URL=$BENCH_PG)
        [ "$section" = put-pg-redis-vs-memory ] && other=(--b-name svc-memory-broker --b-env BROKER_URL=memory:// --b-env DATABASE_URL=$BENCH_PG)
        pair "$section" put "${svc[@]}" --a-name svc-redis-broker --a-env DATABASE_URL=$BENCH_PG \
            --a-env "BROKER_URL=$BENCH_REDIS" --b "$PY -m svc" --b-env BCRYPT_ROUNDS=12 "${other[@]}" -- --users 1000
        ;;
    put-pg-history-redis|put-pg-history-pg)  # history on (ROOM_HISTORY=100, A) against off (0, B),
        # every PUT's user present in a room of their own (each change a numbered room event)
        ulimit -n 20000; createdb_if_missing "$BENCH_PG"
        broker=(); [ "$section" = put-pg-history-redis ] && broker=(--a-env "BROKER_URL=$BENCH_REDIS" --b-env "BROKER_URL=$BENCH_REDIS")
        pair "$section" put "${svc[@]}" --a-name svc-history-100 --a-env DATABASE_URL=$BENCH_PG --a-env ROOM_HISTORY=100 \
            --b-name svc-history-0 --b "$PY -m svc" --b-env BCRYPT_ROUNDS=12 --b-env DATABASE_URL=$BENCH_PG --b-env ROOM_HISTORY=0 \
            "${broker[@]}" -- --users 1000 --present 1000
        ;;
    put-pg-history-vs-base)  # Postgres broker, ROOM_HISTORY=100 (A) against BASE_REF's svc
        # (B, setup-base), each on its own database, 1,000 writers present
        ulimit -n 20000; createdb_if_missing "$BENCH_PG"; createdb_if_missing "${BENCH_PG}_base"
        pair "$section" put "${svc[@]}" --a-name svc-history-100 --a-env DATABASE_URL=$BENCH_PG --a-env ROOM_HISTORY=100 \
            --b-name svc-base --b "$WORK/venv-base/bin/python -m svc" --b-env BCRYPT_ROUNDS=12 \
            --b-env DATABASE_URL=${BENCH_PG}_base -- --users 1000 --present 1000
        ;;
    put-pg-redis-vs-aiopg)  # Postgres storage with the Redis broker against the aiohttp + aiopg ceiling
        createdb_if_missing "$BENCH_PG"; createdb_if_missing "$CEILING_PG"
        pair put-pg-redis-vs-aiopg put "${svc[@]}" --a-name svc-redis-broker --a-env DATABASE_URL=$BENCH_PG \
            --a-env "BROKER_URL=$BENCH_REDIS" "${pgceil[@]}" -- --users 1000
        ;;
    fanout-two)
        # One update to 2,000 members: two processes sharing Postgres and Redis (1,000 each)
        # against one process with all 2,000, both on that storage and broker.  Not pair.py:
        # side A is two servers.  Waits for a 1-minute load average below 1.5 (at most 15 min).
        ulimit -n 20000; createdb_if_missing "$BENCH_PG"; mkdir -p "$RESULTS"; echo "== fanout-two"
        "$PY" "$HERE/fanout_two.py" --rounds "$ROUNDS" --database-url "$BENCH_PG" \
            --redis-url "${BENCH_REDIS%%\?*}" --server "$PY -m svc" --out "$RESULTS/fanout-two.jsonl" \
            | tee "$RESULTS/fanout-two.txt"
        ;;
    workers)
        # WORKERS=2 against WORKERS=1, both up at once on Postgres storage and the Redis broker
        # (a prefix each: neither hears the other's changes), bursts alternated.  Not pinned:
        # two workers on one core would measure nothing.  cpu_us counts every worker.
        createdb_if_missing "$BENCH_PG"
        for scenario in put get; do
            interleave "workers-$scenario-pg-redis" "$scenario" --no-pin \
                --a-name workers-2 --a "$PY -m svc" --a-env WORKERS=2 --a-env BCRYPT_ROUNDS=12 \
                --a-env DATABASE_URL=$BENCH_PG --a-env "BROKER_URL=$BENCH_REDIS-w2" \
                --b-name workers-1 --b "$PY -m svc" --b-env BCRYPT_ROUNDS=12 \
                --b-env DATABASE_URL=$BENCH_PG --b-env "BROKER_URL=$BENCH_REDIS-w1"
        done
        ;;
    workers-cost)
        # Where WORKERS=2's extra CPU per PUT goes: per PUT, CPU, system calls (perf stat on
        # the syscall tracepoints: needs perf and permission to trace), epoll wake-ups and
        # Redis publish batches, WORKERS=2 against WORKERS=1 at wrk -c32 and -c128, then
        # WORKERS=2 at -c32 against WORKERS=1 at -c16 (each loop as loaded as each of the
        # two workers' loops), WORKERS=1 at -c32 against itself at -c16, and GET.  About
        # 2 min each, 10 min in all.
        createdb_if_missing "$BENCH_PG"; mkdir -p "$RESULTS"
        for run in "put-c32 --concurrency 32" "put-c128 --concurrency 128" \
                   "w2c32-w1c16 --concurrency 32 --b-concurrency 16" \
                   "w1c32-w1c16 --a-workers 1 --concurrency 32 --b-concurrency 16" "get-c32 --get"; do
            set -- $run
            name=$1; shift
            echo "== workers-cost-$name"
            (cd "$HERE" && "$PY" workers_cost.py --bursts 6 --seconds 4 --database-url "$BENCH_PG" \
                --redis-url "${BENCH_REDIS%%\?*}" --server "$PY -m svc" "$@" \
                --out "$RESULTS/workers-cost-$name.jsonl") | tee "$RESULTS/workers-cost-$name.txt"
        done
        ;;
    idle100k)
        # 100,000 idle WebSockets in one process, svc (memory storage and broker) against
        # bare aiohttp, alternated on fresh processes: connect time, RSS per socket, and one
        # update's last delivery.  Needs: a hard file limit above the sockets for the server
        # and the clients (IDLE_SOCKETS + 1,000; raising it takes CAP_SYS_RESOURCE, as root:
        # ulimit -Hn 110000), 127.0.R.x loopback addresses (Linux routes all of 127/8), about
        # 3 GiB of RAM, and 25-40 min for 3 rounds on 2 cores (a round: ~2 min per side).
        # IDLE_SOCKETS=19000 where the hard limit is 20,000 (this machine: see README).
        mkdir -p "$RESULTS"; echo "== idle100k"
        "$PY" "$HERE/idle_sockets.py" --sockets "${IDLE_SOCKETS:-100000}" --rounds "$ROUNDS" \
            --clients "${IDLE_CLIENTS:-4}" --svc "$PY -m svc" \
            --bare "$PY $HERE/ceilings/bare.py --port {port} --uvloop" \
            --out "$RESULTS/idle100k.jsonl" | tee "$RESULTS/idle100k.txt"
        ;;
    lag)            pair lag-svc-vs-bare-note lag "${svc[@]}" --b-name svc-cost-4 --b "$PY -m svc" --b-env BCRYPT_ROUNDS=4 ;;
    peer-get|peer-put|peer-connect|peer-fanout|peer-lag)
        need_peer
        ulimit -n 20000
        extra=(); [ "$section" = peer-connect ] || [ "$section" = peer-fanout ] && extra=(-- --clients 2000)
        pair "${section#peer-}-svc-vs-peer" "${section#peer-}" "${svc[@]}" "${peer[@]}" "${extra[@]}"
        ;;
    *) echo "unknown section: $section" >&2; exit 2 ;;
    esac
done
