# Shared by the serving benchmark scripts (sourced, not run): starting and stopping servers and
# driving them with `rotor bench`. Expects `rotor` (the binary) and `out` (a results dir) set.

# Waits until GET http://127.0.0.1:PORT/v1/models answers (up to 4 minutes).
wait_up() { # port pid
  for _ in $(seq 1 480); do
    curl -sf "http://127.0.0.1:$1/v1/models" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "server on port $1 exited during start-up" >&2; return 1; }
    sleep 0.5
  done
  echo "server on port $1 did not start" >&2
  return 1
}

# Stops the server with pid $1 (SIGTERM, then SIGKILL after 10 s).
stop_server() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 20); do kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }; sleep 0.5; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# One warm-up request (load pages, first-call costs), not measured.
warm_up() { # port
  "$rotor" bench --url "http://127.0.0.1:$1" --concurrency 1 --num-requests 2 --input-len 32 \
    --output-len 8 --prompt-format text --no-progress --no-metrics --seed 1 >/dev/null
}

# Closed-loop load at concurrency C: REQS requests (default 4 x C, at least 8) of IN-token text
# prompts asking for OUT tokens. The seed depends on C, so runs at different concurrencies against
# one server send different prompts (none served from an earlier run's cache), while every server
# gets the same prompts at the same C. Writes $out/NAME.json and NAME.txt.
bench_load() { # name port concurrency [in] [out] [reqs]
  local name=$1 port=$2 c=$3 in=${4:-128} outlen=${5:-128} n=${6:-}
  if [ -z "$n" ]; then n=$(( c * 4 )); [ "$n" -lt 8 ] && n=8; fi
  "$rotor" bench --url "http://127.0.0.1:$port" --concurrency "$c" --num-requests "$n" \
    --input-len "$in" --output-len "$outlen" --prompt-format text --max-duration 10m \
    --no-progress --no-metrics --seed "$(( 1000 + c ))" --output-json "$out/$name.json" \
    > "$out/$name.txt"
}

# The shared-prefix TTFT scenario: REPS x (A, B, C) with PREFIX-token prefixes, 32-token
# suffixes, 16 output tokens. Writes $out/NAME.json and NAME.txt.
bench_prefix() { # name port [prefix] [reps]
  "$rotor" bench --url "http://127.0.0.1:$2" --scenario shared-prefix --prefix-len "${3:-1000}" \
    --num-requests "${4:-5}" --input-len 32 --output-len 16 --prompt-format text \
    --max-duration 10m --no-progress --no-metrics --seed 11 --output-json "$out/$1.json" \
    > "$out/$1.txt"
}

load_line() { echo "load $(cut -d' ' -f1-3 /proc/loadavg)"; }
