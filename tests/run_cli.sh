#!/bin/sh
# tests/run_cli.sh ATTNC TESTS_DIR: the attnc command line.
#
# Exit status 2 and a usage hint for misuse; 1 and a located diagnostic for a bad file (empty, binary,
# over the 64 MiB limit, unreadable); 0 for clean files; check's worst status over several files; the
# machine form of diagnostics.  Runs in a temporary directory, with bare file names.
set -u
if [ $# -ne 2 ]; then
    echo "usage: run_cli.sh ATTNC TESTS_DIR" >&2
    exit 2
fi
attnc=$1
tests=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$tmp" || exit 1
failures=0

# run STATUS ARGS...: run attnc, expect STATUS; stdout in out, stderr in err.
run() {
    want=$1
    shift
    "$attnc" "$@" >out 2>err
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: attnc $*: exit status $got, expected $want"
        sed 's/^/  stderr: /' err
        failures=$((failures + 1))
    fi
}

# expect_file NAME TEXT: the file NAME holds exactly TEXT (plus a final newline).
expect_file() {
    printf '%s\n' "$2" >expected
    if ! cmp -s expected "$1"; then
        echo "FAIL: $1 differs (- expected, + actual):"
        diff -u expected "$1" | sed '1,2d'
        failures=$((failures + 1))
    fi
}

expect_empty() {
    if [ -s "$1" ]; then
        echo "FAIL: $1 is not empty:"
        cat "$1"
        failures=$((failures + 1))
    fi
}

hint="(run 'attnc --help' for usage)"

# ---- misuse: exit 2 ----
run 2
expect_file err "attnc: no command
$hint"
run 2 frobnicate x.attn
expect_file err "attnc: unknown command 'frobnicate'
$hint"
run 2 check --bogus x.attn
expect_file err "attnc: check: unknown option '--bogus'
$hint"
run 2 check
expect_file err "attnc: check: no input files
$hint"
run 2 check --diag=machine
expect_file err "attnc: check: no input files
$hint"
run 2 ir a.attn b.attn
expect_file err "attnc: ir: expected exactly one FILE ('b.attn' is a second)
$hint"
run 2 ir --after nosuchpass a.attn
expect_file err "attnc: ir: unknown pass 'nosuchpass'; the passes are: chunk tile fuse schedule"
run 2 compile
expect_file err "attnc: compile: no FILE
$hint"
run 2 compile x.attn --emit sass
expect_file err "attnc: compile: --emit takes cuda, ptx or cubin, not 'sass'
$hint"
run 2 compile x.attn --emit cubin
expect_file err "attnc: compile: a cubin is binary: give -o FILE
$hint"
run 2 compile x.attn --grad --warp-specialized
expect_file err "attnc: compile: --warp-specialized is a forward unit, not one of --grad's
$hint"
# the warp-specialised walk's unit: sm_90a only, and only for the plans that have one (no NVRTC reached)
cp "$tests/../specs/lightning.attn" "$tests/../specs/gla.attn" .
run 1 compile lightning.attn --arch sm_80 --warp-specialized --emit ptx
expect_file err "attnc: compile: lightning: the warp-specialised walk is compiled for sm_90a only, not sm_80"
run 1 compile gla.attn --arch sm_90a --warp-specialized --emit ptx
expect_file err "attnc: compile: gla: its plan has no warp-specialised walk (codegen/cuda.c's ws_eligible)"
run 2 run x.attn
expect_file err "attnc: run: --tokens T (or --varlen) is required
$hint"
run 2 run x.attn --tokens 0
expect_file err "attnc: run: --tokens needs an integer from 1 to 16777216, not '0'
$hint"
run 2 run x.attn --tokens 4 --grad --bwd-walk sideways
expect_file err "attnc: run: --bwd-walk takes auto, sequence or split, not 'sideways'
$hint"
run 2 run x.attn --tokens 4 --saved-states
expect_file err "attnc: run: --saved-states needs --grad
$hint"
run 2 run x.attn --tokens 4 --jit tiered
expect_file err "attnc: run: --jit takes optimized or quick, not 'tiered'
$hint"
run 2 ir
expect_file err "attnc: ir: expected exactly one FILE
$hint"
run 2 ir --verbose
expect_empty out

# ---- help and version: exit 0 ----
run 0 --help
head -n 1 out >first
expect_file first "usage: attnc <command> [options]"
expect_empty err
run 0 --version
grep -q '^attnc [0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]* (library [0-9.]*)$' out ||
    { echo "FAIL: --version printed: $(cat out)"; failures=$((failures + 1)); }

# ---- files that cannot be read or are not specs: exit 1, located ----
run 1 check missing.attn
expect_file err "attnc: cannot open 'missing.attn': No such file or directory"
mkdir adir
run 1 check adir
expect_file err "attnc: cannot read 'adir'"
: >empty.attn
run 1 check empty.attn
expect_file err "empty.attn:1:1: error: unexpected end of file, expected 'attention'
    1 | 
      | ^"
printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\003\000>\000\001\000\000\000' >binary.attn
run 1 check binary.attn
expect_file err "binary.attn:1:1: error: control character 0x7f in the source
    1 | ?ELF??????????????>?????
      | ^
binary.attn:1:2: error: unexpected name 'ELF', expected 'attention'
    1 | ?ELF??????????????>?????
      |  ^~~"
run 1 ir binary.attn
expect_empty out
# 64 MiB + 1 byte, sparse: refused without being read whole
dd if=/dev/zero of=big.attn bs=1 count=0 seek=67108865 2>/dev/null
run 1 check big.attn
expect_file err "attnc: error: big.attn: the input is larger than the limit of 67108864 bytes"

# ---- several files: every file's diagnostics, the worst status ----
cp "$tests/specs/gqa_gla.attn" good.attn
cp "$tests/golden/warn_unused.attn" warn.attn
run 0 check good.attn warn.attn
expect_empty out
grep -c ': warning: ' err >count
expect_file count 3
run 1 check good.attn empty.attn warn.attn
grep -c ': warning: \|: error: ' err >count
expect_file count 4
run 1 check missing.attn good.attn
expect_file err "attnc: cannot open 'missing.attn': No such file or directory"

# ---- the machine form ----
cp "$tests/golden/name_duplicate.attn" dup.attn
run 1 check --diag=machine dup.attn
expect_file err "error|dup.attn|5|16|redefinition of 'K'
note|dup.attn|4|7|previous definition is here
error|dup.attn|9|7|redefinition of 'q'
note|dup.attn|6|9|previous definition is here
error|dup.attn|10|9|redefinition of 'v'
note|dup.attn|8|9|previous definition is here
error|dup.attn|11|9|'head' is a built-in name and cannot be redefined
error|dup.attn|12|9|'exp' is the name of a built-in function
error|dup.attn|13|7|'sigmoid' is the name of a built-in function"
# --diag=text after --diag=machine: the last one wins
run 1 check --diag=machine --diag=text empty.attn
expect_file err "empty.attn:1:1: error: unexpected end of file, expected 'attention'
    1 | 
      | ^"

# ---- ir: the IR on stdout only for a clean spec ----
run 0 ir good.attn
head -n 2 out >first
expect_file first "attnc-ir 1
variant gqa_gla"
expect_empty err
run 1 ir dup.attn
expect_empty out

if [ "$failures" -ne 0 ]; then
    echo "$failures CLI check(s) failed"
    exit 1
fi
exit 0
