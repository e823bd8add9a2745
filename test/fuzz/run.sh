#!/usr/bin/env bash
# test/fuzz/run.sh: the JOSE parser (src/jose.c) outside PostgreSQL.
#
#   1. jose_test: the parser unit tests, built with ASan and UBSan
#      (-fno-sanitize-recover=all: any report is fatal), run;
#   2. fuzz_jose: the libFuzzer target, with ASan and UBSan, run for
#      $MEDPRO_FUZZ_SECONDS seconds (default 60; 0 skips it) from a seed
#      corpus derived from the public vectors ($MEDPRO_VECTORS, default
#      ../shared/vectors) plus a few hand-made seeds, with the dictionary
#      test/fuzz/jose.dict.
#
# Needs clang-14 and libclang-rt-14-dev (scripts/deps.sh) and no server.
# Exits non-zero on a failed test, a crash, a leak, a timeout or an
# out-of-memory.  Builds in test/fuzz/build/ (ignored by git).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
B=test/fuzz/build
mkdir -p "$B"
CC=${MEDPRO_FUZZ_CC:-clang-14}
SECONDS_=${MEDPRO_FUZZ_SECONDS:-60}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -Wall -Wextra -Werror -Isrc"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "-- jose_test (ASan + UBSan)"
$CC $CFLAGS $SAN src/jose.c test/fuzz/jose_test.c -o "$B/jose_test"
"$B/jose_test"

[ "$SECONDS_" = 0 ] && { echo "-- fuzzing skipped (MEDPRO_FUZZ_SECONDS=0)"; exit 0; }

echo "-- fuzz_jose (libFuzzer + ASan + UBSan), ${SECONDS_} s"
$CC $CFLAGS $SAN -fsanitize=fuzzer src/jose.c test/fuzz/fuzz_jose.c -o "$B/fuzz_jose"

# Seeds: every vector's token, and its header and payload JSON.
VECTORS=${MEDPRO_VECTORS:-$ROOT/../shared/vectors}
rm -rf "$B/seeds"
mkdir -p "$B/seeds" "$B/corpus"
python3 - "$VECTORS/jwt_public.json" "$B/seeds" <<'PY'
import base64, json, os, sys
src, out = sys.argv[1], sys.argv[2]
n = 0
def put(b):
    global n
    with open(os.path.join(out, "seed%03d" % n), "wb") as f:
        f.write(b)
    n += 1
for v in json.load(open(src))["vectors"]:
    tok = v["token"]
    put(tok.encode())
    for seg in tok.split(".")[:2]:
        put(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
hand = [
    b'{"alg":"HS256","typ":"JWT","kid":"k\\u0031","crit":["exp"]}',
    b'{"exp":1700000000.9,"nbf":1e3,"iat":-0,"aud":["a",""],"sub":"\\ud83d\\ude00"}',
    b'{"a":[[[[[[[[{"b":{"c":[1,2.5e-3,true,false,null]}}]]]]]]]]}',
    b'{"a":1,"\\u0061":2}',
    b'{"x":"\\u0000"}',
    b'eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.AAAA',
    b'e30=.e30.AB',
    b'1e100000000',
    b'253402300799.0000001',
]
for h in hand:
    put(h)
print("%d seeds from %s" % (n, src))
PY

log="$B/fuzz.log"
set +e
"$B/fuzz_jose" -max_total_time="$SECONDS_" -timeout=10 -rss_limit_mb=1024 -max_len=12000 \
	-dict=test/fuzz/jose.dict \
	-print_final_stats=1 "$B/corpus" "$B/seeds" >"$log" 2>&1
rc=$?
set -e
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
if [ $rc -ne 0 ]; then
	tail -n 60 "$log"
	echo "fuzz_jose FAILED (exit $rc); the input is in $B (crash-*, leak-*, timeout-*, oom-*)" >&2
	exit 1
fi
echo "fuzz_jose: ${execs:-?} executions in ${secs:-$SECONDS_} s, peak RSS ${peak:-?} MB, corpus $(ls "$B/corpus" | wc -l) inputs, no crash"
