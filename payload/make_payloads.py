"""Rebuild the payload files next to this script: `python payload/make_payloads.py`.

Sizes and alphabets follow the payload files OMB's workloads name: hex digits
up to 1 KiB, letters and digits for 2 and 4 KiB, no trailing newline. The
characters come from SHA-256 in counter mode, so every run writes the same
bytes on every Python version and the committed files can be checked
against this script (`--check`).
"""

from __future__ import annotations

import hashlib
import string
import sys
from pathlib import Path
from typing import Final

HEX_DIGITS: Final = "0123456789abcdef"
LETTERS_AND_DIGITS: Final = string.ascii_letters + string.digits

#: File name -> (size in bytes, alphabet).
PAYLOADS: Final = {
    "payload-100b.data": (100, HEX_DIGITS),
    "payload-200b.data": (200, HEX_DIGITS),
    "payload-400b.data": (400, HEX_DIGITS),
    "payload-1Kb.data": (1024, HEX_DIGITS),
    "payload-2Kb.data": (2048, LETTERS_AND_DIGITS),
    "payload-4Kb.data": (4096, LETTERS_AND_DIGITS),
}


def payload_bytes(file_name: str) -> bytes:
    """The exact content of one payload file, derived from its name alone."""
    size_bytes, alphabet = PAYLOADS[file_name]
    chosen = bytearray()
    block = 0
    while len(chosen) < size_bytes:
        digest = hashlib.sha256(f"{file_name}:{block}".encode()).digest()
        # A byte modulo 62 slightly favours some characters; irrelevant for
        # filler text, and it keeps the mapping obvious.
        chosen += bytes(ord(alphabet[b % len(alphabet)]) for b in digest)
        block += 1
    return bytes(chosen[:size_bytes])


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    check_only = "--check" in argv
    stale: list[str] = []
    for file_name in PAYLOADS:
        path = here / file_name
        wanted = payload_bytes(file_name)
        if check_only:
            if not path.is_file() or path.read_bytes() != wanted:
                stale.append(file_name)
        else:
            path.write_bytes(wanted)
    for file_name in stale:
        print(f"{here / file_name} differs from what this script writes")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
