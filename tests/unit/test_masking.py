"""The gateway's MASK bit check follows frame boundaries across any split of the stream."""

from __future__ import annotations

import pytest

from tests.hostile.rawws import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, build_frame
from tidings.gateway.masking import MaskBitCheck

MASKED = [build_frame(OP_TEXT, b"hi"), build_frame(OP_BINARY, b"x" * 300),
          build_frame(OP_BINARY, b"y" * 70_000), build_frame(OP_PING, b""),
          build_frame(OP_CLOSE, b"\x03\xe8")]
STREAM = b"".join(MASKED)


def feed(chunks: list[bytes]) -> bool:
    check = MaskBitCheck()
    return any(check.unmasked(chunk) for chunk in chunks)


def test_masked_frames_pass_whole_and_byte_by_byte() -> None:
    assert not feed([STREAM])
    assert not feed([STREAM[i:i + 1] for i in range(len(STREAM))])


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 9, 13, 300, 310, 318, 320])
def test_masked_frames_pass_split_anywhere(cut: int) -> None:
    assert not feed([STREAM[:cut], STREAM[cut:]])


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536])
def test_an_unmasked_frame_after_masked_ones_is_seen_at_any_split(size: int) -> None:
    stream = STREAM + build_frame(OP_BINARY, b"z" * size, mask=False)
    for cut in (len(STREAM) - 1, len(STREAM), len(STREAM) + 1, len(stream)):
        assert feed([stream[:cut], stream[cut:]])
    assert feed([stream])


def test_random_streams_split_at_random_agree_with_the_frames_sent() -> None:
    """Masked frames of every length form, then maybe one unmasked, cut into random
    reads: the check answers True exactly when the unmasked frame is there."""
    import random

    rng = random.Random(19)
    for _ in range(300):
        frames = [build_frame(OP_BINARY, b"p" * rng.choice([0, 1, 125, 126, 200, 65_536]))
                  for _ in range(rng.randint(1, 6))]
        bad = rng.random() < 0.5
        if bad:
            frames.append(build_frame(OP_TEXT, b"u" * rng.choice([0, 5, 126]), mask=False))
        stream = b"".join(frames)
        cuts = sorted(rng.sample(range(1, len(stream)), min(4, len(stream) - 1)))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert feed(chunks) is bad
