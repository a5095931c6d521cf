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
