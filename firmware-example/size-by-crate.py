#!/usr/bin/env python3
"""Attributes a firmware image's flash to the crates that put it there.

    ./size-by-crate.py ELF [--symbols N]

Code (`.text`): every halfword is looked up with `llvm-symbolizer --inlining`
in the DWARF of the release build (`debug = 2`). Its *owner* is the innermost
frame of the inline chain that is not the Rust standard library, so `core`
code inlined into proto-core counts as proto-core, and proto-core's driver
inlined into the firmware's `app::run` counts as proto-core too. Standalone
`core`/`compiler_builtins` functions (memcpy, division, `core::fmt`) are
"shared runtime": they are listed, not charged to anyone.

Read-only data (`.rodata`) needs the image linked with
`-C link-arg=--emit-relocs` (layout and sizes do not change): every absolute
pointer into `.rodata` marks the start of a piece, and the piece belongs to the
owner of the code (or data) that points at it; a piece two owners point at is
"shared". Without relocations `.rodata` is reported whole, unattributed.

The protocol part is proto-core plus the crates it brings in (postcard, serde,
sha2, hmac, digest, crc, ...); see PROTOCOL_CRATES.
"""
import collections
import json
import struct
import subprocess
import sys

PROTOCOL_CRATES = {
    "proto-core", "postcard", "serde", "serde_core", "cobs", "sha2", "hmac",
    "digest", "block-buffer", "generic-array", "crypto-common", "subtle",
    "crc", "crc-catalog", "embedded-io", "cpufeatures", "typenum",
}
RUNTIME_CRATES = {"core", "core::fmt", "compiler_builtins", "alloc"}
CODE_SECTIONS = (".vector_table", ".boot2", ".text")
R_ARM_ABS32 = 2
R_ARM_THM_MOVW_ABS_NC = 47
R_ARM_THM_MOVT_ABS = 48
SHF_ALLOC = 2


def read_sections(data):
    """The ELF32 little-endian section headers, by name."""
    e_shoff, = struct.unpack_from("<I", data, 0x20)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, e_shoff + i * e_shentsize)
               for i in range(e_shnum)]
    names_offset = headers[e_shstrndx][4]
    sections = []
    for index, (name, kind, flags, addr, offset, size, _link, info, _align, entsize) in enumerate(headers):
        end = data.index(b"\0", names_offset + name)
        sections.append({"index": index, "name": data[names_offset + name:end].decode(),
                         "type": kind, "flags": flags, "addr": addr, "offset": offset, "size": size,
                         "info": info, "entsize": entsize})
    return sections


def thumb_mov_imm16(data, pos):
    """The 16-bit immediate of a Thumb-2 MOVW/MOVT (imm4:i:imm3:imm8)."""
    first, second = struct.unpack_from("<HH", data, pos)
    imm4, i = first & 0xF, (first >> 10) & 1
    imm3, imm8 = (second >> 12) & 7, second & 0xFF
    return imm4 << 12 | i << 11 | imm3 << 8 | imm8


def literal_loads(data, section):
    """Literal-pool word address -> addresses of the Thumb `LDR rt, [pc, #imm]` that load it.

    A literal sits after some function's code and the line table charges it to
    whatever came before; the instruction that loads it says who uses it.
    """
    loads = collections.defaultdict(list)
    base, size, offset = section["addr"], section["size"], section["offset"]
    for a in range(base, base + size - 1, 2):
        hw, = struct.unpack_from("<H", data, offset + a - base)
        if hw >> 11 == 0b01001:  # LDR (literal) T1
            loads[((a + 4) & ~3) + (hw & 0xFF) * 4].append(a)
        elif hw & 0xFF7F == 0xF85F and a + 4 <= base + size:  # LDR.W (literal) T2
            second, = struct.unpack_from("<H", data, offset + a - base + 2)
            imm = second & 0xFFF
            loads[((a + 4) & ~3) + (imm if hw & 0x80 else -imm)].append(a)
    return loads


def crate_of(path):
    """The crate a source path belongs to (`core::fmt` is told apart from the rest of core)."""
    if not path or path == "??":
        return None
    if "/.cargo/registry/src/" in path or "/.cargo/git/checkouts/" in path:
        parts = path.split("/")
        for i, part in enumerate(parts):
            if part.startswith("index.crates.io") or part.startswith("github.com-"):
                return parts[i + 1].rsplit("-", 1)[0]
    if "compiler_builtins" in path or "compiler-builtins" in path:
        return "compiler_builtins"
    if "/library/core/src/fmt/" in path:
        return "core::fmt"
    for lib in ("compiler-builtins", "core", "alloc"):
        if f"/library/{lib}/" in path:
            return lib.replace("-", "_")
    if "/proto-core/" in path:
        return "proto-core"
    if "/firmware-example/" in path or path.startswith("src/"):
        return "firmware"
    return "other: " + path


def crate_of_symbol(name):
    """Fallback for code without line info (hand-written assembly, builtins)."""
    if name.startswith("__aeabi") or name.startswith("compiler_builtins") or name in ("memcpy", "memmove", "memset", "memcmp"):
        return "compiler_builtins"
    if name.startswith("_start") or name in ("Reset", "DefaultHandler_", "HardFault_", "__pre_init"):
        return "firmware"
    return "unknown"


def symbolize(elf, addresses):
    """Inline chains (innermost first) of each address, as crate names, plus the symbol name."""
    proc = subprocess.run(
        ["llvm-symbolizer", "--obj=" + elf, "--inlining", "--functions=linkage",
         "--output-style=JSON"],
        input="\n".join(hex(a) for a in addresses), capture_output=True, text=True, check=True)
    chains = {}
    for line in proc.stdout.splitlines():
        entry = json.loads(line)
        frames = entry.get("Symbol", [])
        crates = [crate_of(f.get("FileName")) for f in frames]
        name = frames[-1].get("FunctionName", "") if frames else ""
        chains[int(entry["Address"], 16)] = (crates, name)
    return chains


def owner_of(crates, name):
    """The innermost non-runtime crate of an inline chain; the runtime crate if there is none."""
    known = [c for c in crates if c]
    for crate in known:
        if crate not in RUNTIME_CRATES:
            return crate
    if known:
        return known[-1]  # a runtime function: the crate it is defined in
    return crate_of_symbol(name)


def kib(n):
    return f"{n / 1024:6.1f} KiB"


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    elf = sys.argv[1]
    top = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--symbols" else 0
    data = open(elf, "rb").read()
    sections = read_sections(data)
    by_name = {s["name"]: s for s in sections}

    code = collections.Counter()           # owner -> bytes
    code_direct = collections.Counter()    # innermost crate -> bytes
    symbols = collections.Counter()        # (owner, outer symbol) -> bytes
    owner_at = {}
    for sname in CODE_SECTIONS:
        section = by_name.get(sname)
        if not section or section["size"] == 0:
            continue
        if sname != ".text":
            code["firmware" if sname != ".boot2" else "firmware"] += section["size"]
            code_direct[sname] += section["size"]
            continue
        addresses = list(range(section["addr"], section["addr"] + section["size"], 2))
        chains = symbolize(elf, addresses)
        for a in addresses:
            crates, name = chains.get(a, ([], ""))
            owner = owner_of(crates, name)
            owner_at[a] = owner
            code[owner] += 2
            code_direct[crates[0] if crates and crates[0] else owner] += 2
            symbols[(owner, name)] += 2

    large_pieces = []
    rodata = by_name.get(".rodata")
    ro = collections.Counter()
    rels = [s for s in sections if s["type"] == 9]  # SHT_REL
    if rodata and rels:
        lo, hi = rodata["addr"], rodata["addr"] + rodata["size"]
        refs = collections.defaultdict(set)   # rodata target -> set of referring addresses
        for rel in rels:
            target_section = sections[rel["info"]]
            if not target_section["flags"] & SHF_ALLOC:
                continue  # debug info and defmt's table point into .rodata too, but are not loaded
            movw = {}  # symbol index -> (place, low half) of a MOVW waiting for its MOVT
            for i in range(rel["size"] // 8):
                r_offset, r_info = struct.unpack_from("<II", data, rel["offset"] + i * 8)
                kind, symbol = r_info & 0xFF, r_info >> 8
                if not 0 <= r_offset - target_section["addr"] < target_section["size"]:
                    continue
                file_pos = target_section["offset"] + (r_offset - target_section["addr"])
                if kind == R_ARM_ABS32:
                    value, = struct.unpack_from("<I", data, file_pos)
                elif kind in (R_ARM_THM_MOVW_ABS_NC, R_ARM_THM_MOVT_ABS):
                    half = thumb_mov_imm16(data, file_pos)
                    if kind == R_ARM_THM_MOVW_ABS_NC:
                        movw[symbol] = (r_offset, half)
                        continue
                    if symbol not in movw:
                        continue
                    r_offset, low = movw.pop(symbol)
                    value = half << 16 | low
                else:
                    continue
                if lo <= value < hi:
                    refs[value].add(r_offset)
        starts = sorted(refs)
        if not starts or starts[0] != lo:
            starts.insert(0, lo)
        pieces = [(s, (starts[i + 1] if i + 1 < len(starts) else hi)) for i, s in enumerate(starts)]
        piece_of = {}
        for s, e in pieces:
            piece_of[s] = (s, e)
        import bisect

        def piece_containing(addr):
            i = bisect.bisect_right(starts, addr) - 1
            return starts[i]

        owners = {}
        referrers = {}
        text = by_name[".text"]
        loads = literal_loads(data, text)
        # Resolve pieces referenced from code first, then from other pieces, until nothing changes.
        for _ in range(8):
            changed = False
            for s, _e in pieces:
                found = set()
                for src in refs.get(s, ()):
                    if src in owner_at:
                        users = [u for u in loads.get(src, ()) if u in owner_at] or [src]
                        found.update(owner_at[u] for u in users)
                    elif lo <= src < hi:
                        parent = owners.get(piece_containing(src))
                        if parent:
                            found.add(parent)
                    else:
                        found.add("firmware")  # .data or other sections: the board's statics
                if found:
                    referrers[s] = found
                    new = next(iter(found)) if len(found) == 1 else "shared"
                    if owners.get(s) != new:
                        owners[s] = new
                        changed = True
            if not changed:
                break
        for s, e in pieces:
            ro[owners.get(s, "unreferenced")] += e - s
        large_pieces = sorted(pieces, key=lambda p: p[0] - p[1])[:top]
        large_pieces = [(s, e - s, owners.get(s, "unreferenced"), sorted(referrers.get(s, ()))) for s, e in large_pieces]
    elif rodata:
        ro["(no relocations: link with --emit-relocs)"] += rodata["size"]

    print(f"{elf}")
    print(f"{'owner':24} {'code':>8} {'rodata':>8} {'total':>8}")
    for owner in sorted(set(code) | set(ro), key=lambda o: -(code[o] + ro[o])):
        print(f"{owner:24} {code[owner]:8d} {ro[owner]:8d} {code[owner] + ro[owner]:8d}")

    def group(keys):
        return sum(code[k] for k in keys), sum(ro[k] for k in keys)

    pc, pr = group([k for k in set(code) | set(ro) if k in PROTOCOL_CRATES])
    own = sum(size for crate, size in code_direct.items() if crate in PROTOCOL_CRATES)
    rc, rr = group([k for k in set(code) | set(ro) if k in RUNTIME_CRATES])
    print()
    print(f"protocol part (proto-core and its dependencies): code {pc} + rodata {pr} = {pc + pr} bytes ({kib(pc + pr).strip()})")
    print(f"  of which code from the protocol crates' own source lines (no inlined core): {own}")
    print(f"shared runtime (core, core::fmt, compiler_builtins; not charged above): code {rc} + rodata {rr} = {rc + rr} bytes")
    print(f"  of which core::fmt: code {code['core::fmt']} + rodata {ro['core::fmt']}")
    print(f"shared rodata (pointed at by more than one owner): {ro['shared']}, unreferenced: {ro['unreferenced']}")
    print()
    print("code by innermost source crate (no inline attribution):")
    for crate, size in code_direct.most_common():
        print(f"  {crate:24} {size:8d}")
    if top:
        print()
        print(f"largest {top} outer symbols, by owner:")
        for (owner, name), size in symbols.most_common(top):
            print(f"  {size:6d} {owner:12} {name}")
        print()
        print(f"largest {top} .rodata pieces (address, size, owner, owners pointing at it):")
        for start, size, owner, who in large_pieces:
            print(f"  {start:#8x} {size:6d} {owner:12} {', '.join(who)}")


if __name__ == "__main__":
    main()
