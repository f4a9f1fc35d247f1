#!/usr/bin/env bash
# Lints (clippy, warnings are errors) and builds the firmware for one or both
# boards, then prints its flash and RAM use. CI runs `./build.sh all`.
#
#   ./build.sh [qemu|pico|all]      (default: all)
#
# STATESYNC_DEVICE_NAME and STATESYNC_DEVICE_KEY are passed through to build.rs.
# Sizes come from llvm-size (rustup component llvm-tools) or arm-none-eabi-size.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-all}" in
  qemu) boards=(qemu) ;;
  pico) boards=(pico) ;;
  all) boards=(qemu pico) ;;
  *) echo "usage: $0 [qemu|pico|all]" >&2; exit 2 ;;
esac

size_tool() {
  local llvm
  llvm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
  if [ -x "$llvm" ]; then echo "$llvm"; elif command -v arm-none-eabi-size >/dev/null; then echo arm-none-eabi-size; fi
}

elf_of() {
  case "$1" in
    qemu) echo target/thumbv7m-none-eabi/release/statesync-firmware ;;
    pico) echo target/thumbv6m-none-eabi/release/statesync-firmware ;;
  esac
}

for board in "${boards[@]}"; do
  case "$board" in
    qemu) target=thumbv7m-none-eabi ;;
    pico) target=thumbv6m-none-eabi ;;
  esac
  cargo clippy --release --locked --features "board-$board" --target "$target" -- -D warnings
  cargo "build-$board" --locked
done

tool="$(size_tool)"
if [ -z "$tool" ]; then
  echo "(no llvm-size or arm-none-eabi-size: 'rustup component add llvm-tools' to see sizes)"
  exit 0
fi
printf '\n%-6s %8s %8s %8s %8s %10s %8s\n' board .text .rodata .data .bss flash RAM
for board in "${boards[@]}"; do
  "$tool" -A "$(elf_of "$board")" | awk -v board="$board" '
    { size[$1] = $2 }
    END {
      text = size[".text"] + size[".vector_table"] + size[".boot2"]
      flash = text + size[".rodata"] + size[".data"]
      ram = size[".data"] + size[".bss"] + size[".uninit"]
      printf "%-6s %8d %8d %8d %8d %10d %8d\n", board, text, size[".rodata"], size[".data"], size[".bss"] + size[".uninit"], flash, ram
    }'
done
echo "(.text includes the vector table and boot2; .rodata includes the 64 KiB sample file; RAM excludes the stack)"

# The protocol part: flash that proto-core and the crates it brings in put
# into each image (see size-by-crate.py for how it is attributed).
if command -v python3 >/dev/null && command -v llvm-symbolizer >/dev/null; then
  for board in "${boards[@]}"; do
    printf '%-6s ' "$board"
    # Informational: a failure here (an old llvm-symbolizer, say) must not fail the build.
    ./size-by-crate.py "$(elf_of "$board")" | grep -E '^(protocol part|shared runtime)' | paste -sd ';' | sed 's/;/\n       /' \
      || echo "(size-by-crate.py failed: see ./size-by-crate.py $(elf_of "$board"))"
  done
else
  echo "(python3 and llvm-symbolizer show the protocol part: ./size-by-crate.py ELF)"
fi
