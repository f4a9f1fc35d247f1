#!/usr/bin/env bash
# Lints (clippy, warnings are errors) and builds the firmware for one or every
# board, each in two profiles: the full client (default features) and the
# upload-only board (`--no-default-features`), then prints their flash and RAM
# use and checks the protocol part of each image, and the core::fmt code
# linked into it, against budget.toml. CI runs `./build.sh all`.
#
#   ./build.sh [BOARD|all] [--update-readme]      (default: all; BOARD from the list below)
#
# Images: `BOARD` (full client) and `BOARD-upload-only`, their ELF files
# copied to target/images/ under those names.
# A board is the folder src/board/BOARD/ (feature `board-BOARD`); its target
# comes from its board.toml.
#
# README.md's "Size" section shows this script's size report between the
# markers below. After building every board, the script compares that block with what it just measured and fails
# when they differ (by more than 64 B a figure: see same_report), so the
# published figures are always those of the source;
# `--update-readme` writes the new report into README.md instead.
#
# Sizes come from llvm-size (rustup component llvm-tools) or arm-none-eabi-size;
# the protocol part needs python3 and llvm-symbolizer (Debian: llvm).
set -euo pipefail
cd "$(dirname "$0")"
# Panic locations embed source paths, so the image's size would depend on
# where the checkout lives: map it to one fixed path, so the sizes (and the
# README's size report checked below) are the same in every clone.
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$(cd .. && pwd)=/statesync"

# Every board, in the order of the size report.
all_boards=(qemu pico lm3s811 microbit sifive_e)

update_readme=false
boards=("${all_boards[@]}")
for arg in "$@"; do
  case "$arg" in
    all) boards=("${all_boards[@]}") ;;
    --update-readme) update_readme=true ;;
    *)
      if [[ " ${all_boards[*]} " == *" $arg "* ]]; then
        boards=("$arg")
      else
        echo "usage: $0 [$(IFS='|'; echo "${all_boards[*]}")|all] [--update-readme]" >&2
        exit 2
      fi
      ;;
  esac
done

readme_begin='<!-- build.sh sizes begin -->'
readme_end='<!-- build.sh sizes end -->'

size_tool() {
  local llvm
  llvm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
  if [ -x "$llvm" ]; then echo "$llvm"; elif command -v arm-none-eabi-size >/dev/null; then echo arm-none-eabi-size; fi
}

# The target of a board or image, from the board's board.toml.
target_of() {
  sed -n 's/^target *= *"\(.*\)".*/\1/p' "src/board/${1%-upload-only}/board.toml"
}

# Where an image's ELF is kept: boards that share a target share cargo's
# output path, so each image is copied out under its own name.
elf_of() {
  echo "target/images/$1"
}

images=()
for board in "${boards[@]}"; do
  target="$(target_of "$board")"
  # Upload-only first, so cargo's usual path holds the full client afterwards (as `cargo run` expects).
  cargo clippy --release --locked --no-default-features --features "board-$board" --target "$target" -- -D warnings
  cargo build --release --locked --no-default-features --features "board-$board" --target "$target"
  mkdir -p target/images
  cp "target/$target/release/statesync-firmware" "$(elf_of "$board-upload-only")"
  cargo clippy --release --locked --features "board-$board" --target "$target" -- -D warnings
  cargo build --release --locked --features "board-$board" --target "$target"
  cp "target/$target/release/statesync-firmware" "$(elf_of "$board")"
  images+=("$board" "$board-upload-only")
done

tool="$(size_tool)"
if [ -z "$tool" ]; then
  echo "(no llvm-size or arm-none-eabi-size: 'rustup component add llvm-tools' to see sizes)"
  exit 0
fi

# The sections of each image, one line per image.
section_table() {
  printf '%-20s %8s %8s %8s %8s %10s %8s\n' image .text .rodata .data .bss flash RAM
  for image in "${images[@]}"; do
    "$tool" -A "$(elf_of "$image")" | awk -v image="$image" '
      { size[$1] = $2 }
      END {
        text = size[".text"] + size[".vector_table"] + size[".boot2"] + size[".init.rust"]
        rodata = size[".rodata"] + size[".eh_frame"]
        flash = text + rodata + size[".data"]
        ram = size[".data"] + size[".bss"] + size[".uninit"]
        printf "%-20s %8d %8d %8d %8d %10d %8d\n", image, text, rodata, size[".data"], size[".bss"] + size[".uninit"], flash, ram
      }'
  done
  echo "(.text includes the vector table, boot2 and riscv-rt's .init.rust; .rodata includes RISC-V's .eh_frame; RAM excludes the stack)"
}

# The protocol part: flash that proto-core and the crates it brings in put
# into each image (see size-by-crate.py for how it is attributed), and how
# much of the shared runtime is core::fmt. Prints nothing and returns 1 when
# it cannot be measured here.
protocol_part() {
  command -v python3 >/dev/null && command -v llvm-symbolizer >/dev/null || return 1
  local image report
  for image in "${images[@]}"; do
    report="$(./size-by-crate.py "$(elf_of "$image")")" || return 1
    printf '%s\n' "$image"
    grep -E '^(protocol part|  of which code from|shared runtime|  of which core::fmt)' <<<"$report" | sed 's/^/  /'
  done
}

# The budget of `image` in budget.toml's section `section` (a `name = bytes` line).
budget_of() {
  awk -v section="[$1]" -v image="$2" '
    /^\[/ { in_section = ($1 == section); next }
    in_section && $1 == image && $2 == "=" { gsub(/_/, "", $3); print $3 }' budget.toml
}

# Fails when an image's protocol part, or the core::fmt code and data linked
# into it (from protocol_part's report), exceeds its budget in budget.toml,
# or has none.
check_budgets() {
  local report="$1" image bytes fmt budget fmt_budget failed=false
  for image in "${images[@]}"; do
    bytes="$(grep -A1 -x "$image" <<<"$report" | sed -n 's/^  protocol part.* = \([0-9]*\) bytes.*/\1/p')"
    fmt="$(grep -A5 -x "$image" <<<"$report" | sed -n 's/^ *of which core::fmt: code \([0-9]*\) + rodata \([0-9]*\).*/\1 + \2/p' | head -n1)"
    fmt=$((fmt))
    budget="$(budget_of protocol-part "$image")"
    fmt_budget="$(budget_of core-fmt "$image")"
    if [ -z "$budget" ] || [ -z "$fmt_budget" ]; then
      echo "budget.toml has no protocol-part or core-fmt budget for $image" \
        "(its protocol part is $bytes bytes, its core::fmt $fmt bytes)" >&2
      failed=true
      continue
    fi
    if [ "$bytes" -gt "$budget" ]; then
      echo "$image: the protocol part is $bytes bytes, over its budget of $budget bytes in budget.toml;" \
        "make it smaller, or raise the budget and say in the commit why the client grew" >&2
      failed=true
    else
      echo "$image: protocol part $bytes bytes, within its budget of $budget"
    fi
    if [ "$fmt" -gt "$fmt_budget" ]; then
      echo "$image: $fmt bytes of core::fmt are linked, over the $fmt_budget bytes budget.toml allows;" \
        "something new formats (a panic message with arguments, a Debug or Display impl, write!):" \
        "find it with './size-by-crate.py ELF --symbols 60' and remove it" >&2
      failed=true
    else
      echo "$image: core::fmt $fmt bytes, within its budget of $fmt_budget"
    fi
  done
  ! $failed
}

table="$(section_table)"
printf '\n%s\n' "$table"
protocol_checked=true
if protocol="$(protocol_part)"; then
  printf '%s\n' "$protocol"
  check_budgets "$protocol"
else
  protocol_checked=false
  # Informational: a missing or failing tool (an old llvm-symbolizer, say) must not fail the build.
  echo "(the protocol part needs python3 and a working llvm-symbolizer: ./size-by-crate.py ELF; budgets not checked)"
fi

# README.md's block holds the report of every board.
if [ "${#boards[@]}" -ne "${#all_boards[@]}" ]; then
  echo "(README.md's sizes are those of './build.sh all': not compared)"
  exit 0
fi
readme_block() {
  sed -n "/^$readme_begin\$/,/^$readme_end\$/p" README.md | sed '1,2d;$d' | sed '$d'
}
if $update_readme; then
  $protocol_checked || { echo "cannot update README.md without the protocol part (python3, llvm-symbolizer)" >&2; exit 1; }
  block="$(printf '%s\n```text\n%s\n%s\n```\n%s' "$readme_begin" "$table" "$protocol" "$readme_end")"
  awk -v begin="$readme_begin" -v end="$readme_end" -v block="$block" '
    $0 == begin { print block; skipping = 1; next }
    $0 == end { skipping = 0; next }
    !skipping { print }' README.md >README.md.new
  mv README.md.new README.md
  echo "README.md: size report updated"
  exit 0
fi
expected="$(readme_block)"
measured="$table"
if $protocol_checked; then
  measured="$(printf '%s\n%s' "$table" "$protocol")"
else
  expected="$(head -n "$(wc -l <<<"$table")" <<<"$expected")"
  echo "(README.md: only the section table was compared)"
fi
# Same text, and every figure within a few bytes: LTO's output moves by a few
# dozen bytes with the checkout's path (cargo hashes a path dependency's path
# into its crate metadata), so exact equality would fail in another clone.
same_report() {
  awk -v tolerance=64 '
    function near(a, b, slack) { return (a - b <= slack) && (b - a <= slack) }
    NR == FNR { want[FNR] = $0; lines = FNR; next }
    {
      got++
      n = split(want[FNR], w, " "); m = split($0, g, " ")
      if (n != m) exit 1
      for (i = 1; i <= n; i++) {
        if (w[i] == g[i]) continue
        a = w[i]; b = g[i]; sub(/^\(/, "", a); sub(/^\(/, "", b)
        if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && near(a, b, tolerance)) continue
        if (a ~ /^[0-9]+\.[0-9]+$/ && b ~ /^[0-9]+\.[0-9]+$/ && near(a, b, 0.15)) continue
        exit 1
      }
    }
    END { if (got != lines) exit 1 }
  ' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}
if ! same_report "$expected" "$measured"; then
  echo "firmware-example/README.md's size report differs from this build's (by more than 64 B somewhere):" >&2
  diff <(printf '%s\n' "$expected") <(printf '%s\n' "$measured") >&2 || true
  echo "run 'cd firmware-example && ./build.sh all --update-readme' and commit README.md (say why the size changed)" >&2
  exit 1
fi
echo "README.md's size report matches this build (within 64 B a figure)"
