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

@test "the frame reader fuzzer replays its seeds and regressions clean" {
	run -0 replay frame seeds/frame
	run -0 replay frame regressions/frame
}

@test "the session fuzzer replays its seeds and regressions clean" {
	run -0 replay session seeds/session
	run -0 replay session regressions/session
}

@test "the message reader fuzzer replays its seeds and regressions clean" {
	run -0 replay msgin seeds/msgin
	run -0 replay msgin regressions/msgin
	[[ "$output" == *nul-in-header-address* ]]
	[[ "$output" != *"runtime error"* ]]
}

@test "the PROXY header fuzzer replays its seeds and regressions clean" {
	run -0 replay proxy seeds/proxy
	run -0 replay proxy regressions/proxy
}

@test "the secure record fuzzer replays its seeds and regressions clean" {
	run -0 replay record seeds/record
	run -0 replay record regressions/record
}

@test "an empty plain frame can be the first thing queued (UBSan: memcpy to NULL)" {
	run -0 replay frame regressions/frame
	[[ "$output" == *empty-plain-write-ubsan* ]]
	[[ "$output" != *"runtime error"* ]]
}
