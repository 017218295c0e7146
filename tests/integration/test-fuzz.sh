#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz-NAME.c) for $FUZZ_SECONDS
# (default 20) on a copy of its seed corpus, tests/fuzz/corpus/NAME/.
# Any finding (crash, sanitizer report, leak, broken property, timeout)
# fails the test; the input is left in $TESTS_TMP/fuzz/.  Builds them with
# `make fuzz` (clang, build-fuzz/) first.  Skipped (77) without clang and
# libFuzzer, and in the sanitizer and TSan runs of make check: the targets
# carry their own ASan + UBSan, one run is enough.
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-10}

if [ "${SANITIZE:-}" = 1 ] || [ "${TSAN:-}" = 1 ]; then
	echo "skipped: the fuzz targets run in the plain make check (they are built with ASan + UBSan already)"
	exit 77
fi
if ! command -v clang >/dev/null 2>&1; then
	echo "skipped: no clang (scripts/deps.sh --test installs clang and libclang-rt-14-dev)"
	exit 77
fi
probe=$(mktemp -d "${TESTS_TMP:-/tmp}/fuzz-probe.XXXXXX")
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" 2>"$probe/err"; then
	echo "skipped: clang cannot link libFuzzer ($(head -n1 "$probe/err")); install libclang-rt-14-dev"
	rm -rf "$probe"
	exit 77
fi
rm -rf "$probe"

# A make run under `make check` inherits its jobserver; this is a fresh one.
unset MAKEFLAGS MAKELEVEL MFLAGS
if ! make -s -j2 fuzz >"${TESTS_TMP:-/tmp}/fuzz-build.log" 2>&1; then
	cat "${TESTS_TMP:-/tmp}/fuzz-build.log"
	echo "FAIL: make fuzz"
	exit 1
fi

out=${TESTS_TMP:-/tmp}/fuzz
mkdir -p "$out"
failed=0 n=0
for f in build-fuzz/fuzz/fuzz-*; do
	[ -x "$f" ] || continue
	name=${f##*/fuzz-}
	seeds=tests/fuzz/corpus/$name
	work=$out/$name
	rm -rf "$work"
	mkdir -p "$work/corpus"
	dirs=("$work/corpus")
	if [ -d "$seeds" ]; then
		dirs+=("$seeds")
	else
		echo "$name: no seed corpus at $seeds"
	fi
	n=$((n + 1))
	# New inputs go to the work corpus, never into the tree.  A finding
	# exits 1 (libFuzzer's default, 77, would read as "skipped").
	"$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 -max_len=70000 \
	     -print_final_stats=1 -artifact_prefix="$work/" \
	     "${dirs[@]}" >"$work/log" 2>&1
	rc=$?
	stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/log" | tail -n1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
	if [ $rc -ne 0 ]; then
		failed=$((failed + 1))
		echo "FAIL: fuzz-$name (exit $rc): input in $work/"
		grep -E 'ERROR|SUMMARY|property failed|runtime error' "$work/log" | head -n 10
		tail -n 20 "$work/log"
	else
		echo "ok: fuzz-$name: ${execs:-?} runs in ${secs}s; ${stats#* }"
	fi
done
[ $n -gt 0 ] || { echo "FAIL: make fuzz built no targets"; exit 1; }
echo "$n fuzz targets, $failed with findings"
[ $failed -eq 0 ]
