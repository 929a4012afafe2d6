"""Near-duplicate fingerprints (pure): a bottom-k MinHash sketch over word 3-shingles.

The same wire story syndicated by several sites arrives as nearly the same text with a
different headline, byline or closing line. Two such texts share most of their word
3-shingles; the ``SKETCH_SIZE`` smallest shingle hashes of each are then mostly the same
values, so counting shared values estimates their resemblance (Broder's bottom-k sketch).

Independent reports of one event (seeds 000 and 004) share almost no 3-shingles — as few
as unrelated articles — and are deliberately not duplicates: they are different stories
about the same news.
"""

from __future__ import annotations

import heapq
import re
import zlib

SKETCH_SIZE = 32
# Shared sketch values out of SKETCH_SIZE above which two texts count as one story:
# half the sketch ~ resemblance >= 0.5, far above what different articles share (< 0.05).
DUPLICATE_SHARED = 16
_WORD = re.compile(r"\w+")


def sketch(text: str) -> list[int]:
    """The smallest 32-bit hashes of the text's lower-cased word 3-shingles."""
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return []
    hashes = {
        zlib.crc32(f"{words[i]} {words[i + 1]} {words[i + 2]}".encode())
        for i in range(len(words) - 2)
    }
    return heapq.nsmallest(SKETCH_SIZE, hashes)


def resemblance(a: list[int], b: list[int]) -> float:
    """Estimated Jaccard resemblance of two texts from their sketches."""
    if not a or not b:
        return 0.0
    union = heapq.nsmallest(SKETCH_SIZE, set(a) | set(b))
    shared = set(a) & set(b)
    return sum(1 for h in union if h in shared) / len(union)
