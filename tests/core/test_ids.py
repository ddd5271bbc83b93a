"""Ids: prefix, ULID text that other ULID tools read, creation order even within one millisecond."""

from __future__ import annotations

import threading
import time

from kefu.core.ids import has_prefix, new_id, ulid_text

# Crockford's base32 digits in order, mapped to the digits Python's int(…, 32) reads: an independent decoder.
_TO_BASE32 = str.maketrans("0123456789abcdefghjkmnpqrstvwxyz", "0123456789abcdefghijklmnopqrstuv")


def decode(text: str) -> int:
    return int(text.translate(_TO_BASE32), 32)


def test_text_round_trips_the_specs_example_and_the_extremes() -> None:
    example = "01arz3ndektsv4rrffq69g5fav"  # the ULID specification's example, in our lower case
    assert ulid_text(decode(example)) == example
    assert ulid_text(0) == "0" * 26
    assert ulid_text((1 << 128) - 1) == "7" + "z" * 25


def test_new_id_carries_the_prefix_and_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id("msg")
    after = time.time_ns() // 1_000_000
    assert has_prefix(value, "msg") and not has_prefix(value, "conv")
    assert before <= decode(value[4:]) >> 80 <= after


def test_ids_sort_in_creation_order_within_a_millisecond_and_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        for _ in range(5_000):
            out.append(new_id("evt"))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for out in made for value in out]
    assert len(set(every)) == len(every)  # never twice, also from several threads at once
    for out in made:
        assert out == sorted(out)  # each thread's ids in the order it made them
    same_ms = [new_id("m") for _ in range(1_000)]
    assert same_ms == sorted(same_ms)
    assert len({decode(v[2:]) >> 80 for v in same_ms}) < len(same_ms)  # some did share a millisecond
