"""The ELF header reader on real binaries of each architecture (tests/builds/data/elf/README.md
says where each header was cut from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builds import elf

DATA = Path(__file__).parent / "data" / "elf"


def header(name: str) -> elf.ElfHeader:
    found = elf.read_header((DATA / name).read_bytes())
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("name", "machine", "bits", "described"),
    [
        ("busybox-amd64.head", elf.EM_X86_64, 64, "x86-64 64-bit"),
        ("busybox-arm64.head", elf.EM_AARCH64, 64, "AArch64 64-bit"),
        ("busybox-armhf.head", elf.EM_ARM, 32, "ARM 32-bit hard-float"),
        ("gofmt-armhf.head", elf.EM_ARM, 32, "ARM 32-bit"),
        ("ld-linux-i386.head", elf.EM_386, 32, "Intel 80386 32-bit"),
    ],
)
def test_reads_machine_and_class_of_real_binaries(
    name: str, machine: int, bits: int, described: str
) -> None:
    found = header(name)
    assert (found.machine, found.bits, found.little_endian) == (machine, bits, True)
    assert found.describe() == described


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("busybox-amd64.head", "linux/amd64"),
        ("busybox-arm64.head", "linux/arm64"),
        ("busybox-armhf.head", "linux/arm/v7"),
        ("busybox-armhf.head", "linux/arm/v6"),
        ("gofmt-armhf.head", "linux/arm/v7"),  # Go's linker sets no float-ABI flag
        ("ld-linux-i386.head", "linux/386"),
    ],
)
def test_a_binary_fits_its_own_platform(name: str, platform: str) -> None:
    assert elf.fits(header(name), platform) is True


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("busybox-amd64.head", "linux/arm64"),
        ("busybox-amd64.head", "linux/arm/v7"),
        ("busybox-amd64.head", "linux/386"),  # same family, other class
        ("busybox-arm64.head", "linux/amd64"),
        ("busybox-arm64.head", "linux/arm/v7"),  # AArch64 is not 32-bit ARM
        ("busybox-armhf.head", "linux/arm64"),
        ("ld-linux-i386.head", "linux/amd64"),
    ],
)
def test_a_binary_of_another_architecture_does_not_fit(name: str, platform: str) -> None:
    assert elf.fits(header(name), platform) is False


def test_soft_float_arm_does_not_fit_armhf_but_fits_v6() -> None:
    # The armhf busybox with its float flag turned to soft, as Debian's armel gcc writes it.
    head = bytearray((DATA / "busybox-armhf.head").read_bytes())
    flags = int.from_bytes(head[36:40], "little")
    flags = (flags & ~elf.EF_ARM_ABI_FLOAT_HARD) | elf.EF_ARM_ABI_FLOAT_SOFT
    head[36:40] = flags.to_bytes(4, "little")
    soft = elf.read_header(bytes(head))
    assert soft is not None and soft.describe() == "ARM 32-bit soft-float"
    assert elf.fits(soft, "linux/arm/v7") is False
    assert elf.fits(soft, "linux/arm/v6") is True


def test_not_elf_and_unknown_platforms() -> None:
    assert elf.read_header(b"#!/bin/sh\necho hi\n" + b"\0" * 64) is None
    assert elf.read_header((DATA / "busybox-amd64.head").read_bytes()[:20]) is None
    assert elf.fits(header("busybox-amd64.head"), "linux/mips64le") is None
