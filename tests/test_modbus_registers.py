"""Modbus register decoding: types, word orders, scaling, sentinels, read coalescing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softrelay.core import Quality
from softrelay.field.modbus.registers import Register, coalesce, decode, encode, raw_value


@pytest.mark.parametrize(
    ("words", "data_type", "order", "value"),
    [
        ([0xFFFF], "int16", "big", -1),
        ([0x8000], "int16", "big", -32768),
        ([0xFFFF], "uint16", "big", 65535),
        ([0x0001, 0x0000], "int32", "big", 65536),
        ([0x0000, 0x0001], "int32", "little", 65536),
        ([0xFFFF, 0xFFFE], "int32", "big", -2),
        ([0x4048, 0xF5C3], "float32", "big", 3.14),
        ([0xF5C3, 0x4048], "float32", "little", 3.14),
    ],
)
def test_types_and_word_orders(words, data_type, order, value):
    assert raw_value(words, data_type, order) == pytest.approx(value, rel=1e-6)


def test_scale_and_offset_as_the_seeds_gateway_sends_tenths():
    reg = Register(10, "int16", scale=0.1)
    assert decode(reg, [653]) == (pytest.approx(65.3), Quality.GOOD)
    assert decode(Register(0, "uint16", scale=0.01, offset=-40.0), [6530]) == (
        pytest.approx(25.3), Quality.GOOD)


def test_the_sentinel_is_no_reading_never_a_temperature():
    reg = Register(10, "int16", scale=0.1, sentinels=(-32768,))
    value, quality = decode(reg, [0x8000])
    assert math.isnan(value) and quality == Quality.SENTINEL  # named so, not "out of range"
    nan_words = encode(math.nan, "float32")
    assert decode(Register(0, "float32"), nan_words)[1] == Quality.OUT_OF_RANGE


@given(st.integers(-(2**31), 2**31 - 1), st.sampled_from(["big", "little"]))
def test_int32_round_trips(value, order):
    assert raw_value(encode(value, "int32", order), "int32", order) == value


@given(st.floats(allow_nan=False, allow_infinity=False, width=32),
       st.sampled_from(["big", "little"]))
def test_float32_round_trips(value, order):
    assert raw_value(encode(value, "float32", order), "float32", order) == value


def test_bad_registers_are_refused():
    with pytest.raises(ValueError, match="takes 2 registers"):
        raw_value([1], "float32")
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        raw_value([70000], "uint16")


def test_reads_are_coalesced_into_the_fewest_requests():
    regs = [Register(0), Register(1), Register(2, "float32"), Register(10), Register(12),
            Register(200, "int32")]
    assert coalesce(regs) == [(0, 4), (10, 1), (12, 1), (200, 2)]
    assert coalesce(regs, max_gap=1) == [(0, 4), (10, 3), (200, 2)]
    assert coalesce([Register(i) for i in range(300)]) == [(0, 125), (125, 125), (250, 50)]
