#!/bin/sh
# Rebuilds every canisters/wasm/<name>.wasm from canisters/c/<name>.c
# (runtime.c and candid.c are linked into each).
#
#   canisters/build.sh            write to canisters/wasm/
#   canisters/build.sh <outdir>   write to <outdir> instead
#
# The output is deterministic: no debug info, no names or producers
# sections (--strip-all), and sources are compiled by relative path, so the
# same compiler version gives the same bytes on every run and machine.
# Requires clang-19 and wasm-ld-19 (override with $CC and $WASM_LD).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/wasm"}
mkdir -p "$out"
out=$(cd "$out" && pwd)

CC=${CC:-clang-19}
WASM_LD=${WASM_LD:-wasm-ld-19}

# -mcpu=mvp: pin the feature set (clang's default "generic" CPU changes
# between releases, e.g. LLVM 19 enables multivalue and reference-types);
# then add only bulk memory (memcpy/memset as memory.copy/memory.fill).
CFLAGS="--target=wasm32 -mcpu=mvp -mbulk-memory -std=c11 -O2 -ffreestanding -nostdlib -nostdlibinc -Wall -Wextra -Werror"
# 64 KiB stack placed first, so an overflow runs off the bottom of memory
# and traps instead of silently corrupting static data.
LDFLAGS="--no-entry --strip-all --gc-sections --stack-first -z stack-size=65536"
KiB=1024
MiB=1048576
MAX=4294967296 # 4 GiB, the wasm32 limit

memory_flags() {
    case "$1" in
    counter) echo "--initial-memory=$((128 * KiB)) --max-memory=$((1 * MiB))" ;;
    # Initial memory ends exactly at HEAP_START (see memory_stress.c).
    memory_stress) echo "--initial-memory=$((1 * MiB)) --max-memory=$MAX" ;;
    # The stack, a 1 MiB page region and a 1 MiB argument/reply buffer.
    bench) echo "--initial-memory=$((3 * MiB)) --max-memory=$((3 * MiB))" ;;
    *) echo "--initial-memory=$((128 * KiB)) --max-memory=$MAX" ;;
    esac
}

# Other compiler releases may emit different bytes, so the toolchain that
# built the committed files is recorded beside them.
{
    $CC --version | head -n 1
    $WASM_LD --version | head -n 1
} >"$out/TOOLCHAIN"

# Append <name>.did as the `icp:public candid:service` custom section, as
# the IC's toolchains do, so tools find the interface in the module.
# (wasm-ld's --strip-all drops custom sections, and its --keep-section
# does not take names with spaces.)
add_candid() {
    python3 - "$1" "$2" <<'PY'
import sys
def leb(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
name = b"icp:public candid:service"
did = open(sys.argv[1], "rb").read()
body = leb(len(name)) + name + did
with open(sys.argv[2], "ab") as wasm:
    wasm.write(b"\x00" + leb(len(body)) + body)
PY
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

cd "$here/c"
$CC $CFLAGS -c runtime.c -o "$tmp/runtime.o"
$CC $CFLAGS -c candid.c -o "$tmp/candid.o"

for src in *.c; do
    name=${src%.c}
    case "$name" in runtime | candid) continue ;; esac
    $CC $CFLAGS -c "$src" -o "$tmp/$name.o"
    # shellcheck disable=SC2046 # word splitting of the flags is intended
    $WASM_LD $LDFLAGS $(memory_flags "$name") "$tmp/$name.o" "$tmp/runtime.o" "$tmp/candid.o" -o "$tmp/$name.wasm"
    chmod 644 "$tmp/$name.wasm" # wasm-ld marks its output executable
    if [ -f "$name.did" ]; then add_candid "$name.did" "$tmp/$name.wasm"; fi
    mv "$tmp/$name.wasm" "$out/$name.wasm"
    echo "built $out/$name.wasm ($(wc -c <"$out/$name.wasm") bytes)"
done

# ledger_fee: the ledger with a transfer fee, a modified module for replay
# verification to catch (see ledger.c).
$CC $CFLAGS -DLEDGER_FEE -c ledger.c -o "$tmp/ledger_fee.o"
# shellcheck disable=SC2046
$WASM_LD $LDFLAGS $(memory_flags ledger) "$tmp/ledger_fee.o" "$tmp/runtime.o" "$tmp/candid.o" -o "$tmp/ledger_fee.wasm"
chmod 644 "$tmp/ledger_fee.wasm"
add_candid ledger.did "$tmp/ledger_fee.wasm"
mv "$tmp/ledger_fee.wasm" "$out/ledger_fee.wasm"
echo "built $out/ledger_fee.wasm ($(wc -c <"$out/ledger_fee.wasm") bytes)"
