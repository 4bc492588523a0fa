"""The multiset hash: order-free, additive, exact."""

from __future__ import annotations

import uuid

from service import checksum


def test_sum_does_not_depend_on_order_and_removal_undoes_addition() -> None:
    elements = [checksum.message_element(uuid.uuid4(), i, "user", f"m{i}") for i in range(50)]
    forward, backward = checksum.StateSum(), checksum.StateSum()
    for e in elements:
        forward.add(e)
    for e in reversed(elements):
        backward.add(e)
    assert forward.hex == backward.hex
    for e in elements:
        forward.remove(e)
    assert forward.hex == checksum.ZERO


def test_each_part_of_an_element_matters() -> None:
    mid = uuid.uuid4()
    base = checksum.message_element(mid, 1, "user", "hi")
    assert base != checksum.message_element(uuid.uuid4(), 1, "user", "hi")
    assert base != checksum.message_element(mid, 2, "user", "hi")
    assert base != checksum.message_element(mid, 1, "assistant", "hi")
    assert base != checksum.message_element(mid, 1, "user", "hi ")
    assert checksum.title_element("") == 0 and checksum.title_element("a") != 0


def test_replace_equals_recompute_and_hex_round_trips() -> None:
    a, b, c = (checksum.title_element(t) for t in "abc")
    running = checksum.StateSum(a + b)
    running.replace(b, c)
    assert running.hex == checksum.StateSum(a + c).hex
    assert checksum.StateSum.parse(running.hex).value == running.value
    assert len(running.hex) == 64
