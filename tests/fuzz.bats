#!/usr/bin/env bats
# The libFuzzer targets of tests/fuzz (built with clang, ASan, UBSan and
# -DUSMTP_FUZZ) replay every committed seed and every input that once
# crashed them (tests/fuzz/regressions/): each must run clean.  "make
# fuzz" does the fuzzing itself.

load helpers

setup_file() {
	make -C "$TOP" -s fuzz-build >&3 2>&1
}

# replay TARGET DIR: runs every file in DIR once through fuzz-TARGET.
replay() {
	local files=("$TOP/tests/fuzz/$2"/*)
	[ -e "${files[0]}" ] || return 0
	"$TOP/tests/fuzz/fuzz-$1" -runs=1 "${files[@]}" 2>&1
}

# replays_clean TARGET: fuzz-TARGET replays seeds/TARGET, then
# regressions/TARGET, each with exit 0 and no sanitizer report; $output
# is then the regressions' run.
replays_clean() {
	local dir
	for dir in seeds regressions; do
		run -0 replay "$1" "$dir/$1"
		[[ "$output" != *"runtime error"* ]]
	done
}

@test "the frame reader fuzzer replays its seeds and regressions clean" {
	replays_clean frame
}

@test "the session fuzzer replays its seeds and regressions clean" {
	replays_clean session
}

@test "the message reader fuzzer replays its seeds and regressions clean" {
	replays_clean msgin
	[[ "$output" == *nul-in-header-address* ]]
}

@test "the PROXY header fuzzer replays its seeds and regressions clean" {
	replays_clean proxy
}

@test "the secure record fuzzer replays its seeds and regressions clean" {
	replays_clean record
}

@test "an empty plain frame can be the first thing queued (UBSan: memcpy to NULL)" {
	run -0 replay frame regressions/frame
	[[ "$output" == *empty-plain-write-ubsan* ]]
	[[ "$output" != *"runtime error"* ]]
}
