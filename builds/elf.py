"""Which machine an ELF file was built for, from its header, and whether that fits a platform.

Hand-written rather than a dependency (pyelftools, lief): the guardrail needs four fields of a
fixed-layout header that fits in the first 64 bytes (class, byte order, e_machine, e_flags), and
it reads them from a file inside an image layer without extracting it. The layout is in the
System V ABI (gABI) and, for the ARM flags, the ARM ELF ABI (AAELF32).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"\x7fELF"
HEADER_BYTES = 64  # a 64-bit header is 64 bytes; a 32-bit one 52
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
EM_386, EM_ARM, EM_X86_64, EM_AARCH64 = 3, 40, 62, 183
EM_PPC64, EM_S390, EM_RISCV = 21, 22, 243
EF_ARM_EABIMASK = 0xFF000000
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400

MACHINES = {
    EM_386: "Intel 80386",
    EM_ARM: "ARM",
    EM_X86_64: "x86-64",
    EM_AARCH64: "AArch64",
    EM_PPC64: "PowerPC64",
    EM_S390: "S/390",
    EM_RISCV: "RISC-V",
}

# platform architecture -> (e_machine, bits); a platform not listed here is not checked.
EXPECTED = {
    "amd64": (EM_X86_64, 64),
    "arm64": (EM_AARCH64, 64),
    "arm": (EM_ARM, 32),
    "386": (EM_386, 32),
    "ppc64le": (EM_PPC64, 64),
    "s390x": (EM_S390, 64),
    "riscv64": (EM_RISCV, 64),
}


@dataclass(frozen=True)
class ElfHeader:
    bits: int
    little_endian: bool
    machine: int
    flags: int

    @property
    def float_abi(self) -> str:
        """ARM only: which float ABI the flags declare ("" when they say nothing)."""
        if self.machine != EM_ARM:
            return ""
        if self.flags & EF_ARM_ABI_FLOAT_HARD:
            return "hard-float"
        if self.flags & EF_ARM_ABI_FLOAT_SOFT:
            return "soft-float"
        return ""

    def describe(self) -> str:
        """e.g. "x86-64 64-bit", "ARM 32-bit hard-float"."""
        name = MACHINES.get(self.machine, f"machine {self.machine}")
        return " ".join(filter(None, [name, f"{self.bits}-bit", self.float_abi]))


def read_header(head: bytes) -> ElfHeader | None:
    """The header of an ELF file from its first bytes; None when it is not an ELF file."""
    if len(head) < 52 or head[:4] != MAGIC or head[4] not in (ELFCLASS32, ELFCLASS64):
        return None
    if head[5] not in (ELFDATA2LSB, ELFDATA2MSB):
        return None
    order = "<" if head[5] == ELFDATA2LSB else ">"
    bits = 32 if head[4] == ELFCLASS32 else 64
    (machine,) = struct.unpack_from(f"{order}H", head, 18)
    # e_flags follows e_entry, e_phoff and e_shoff: 3 words of 4 or 8 bytes after offset 24.
    flags_at = 36 if bits == 32 else 48
    if len(head) < flags_at + 4:
        return None
    (flags,) = struct.unpack_from(f"{order}I", head, flags_at)
    return ElfHeader(bits=bits, little_endian=order == "<", machine=machine, flags=flags)


def fits(header: ElfHeader, platform: str) -> bool | None:
    """Whether a binary with this header runs on `platform` (os/arch[/variant]); None when the
    platform's architecture is not one this knows."""
    _os, arch, *variant = platform.split("/")
    expected = EXPECTED.get(arch)
    if expected is None:
        return None
    if (header.machine, header.bits) != expected:
        return False
    if arch in ("ppc64le", "riscv64", "amd64", "arm64", "386") and not header.little_endian:
        return False
    if arch == "arm" and (variant or ["v7"])[0] == "v7":
        # armhf: an EABI binary that does not declare the soft-float ABI. gcc sets the
        # hard-float flag; Go's linker sets neither flag (it only calls C through cgo), so a
        # missing flag passes and a soft-float one (Debian's armel) does not.
        return bool(header.flags & EF_ARM_EABIMASK) and header.float_abi != "soft-float"
    return True
