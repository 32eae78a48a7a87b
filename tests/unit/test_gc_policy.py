"""The collector settings of the ``cdc`` program (cdc/cli/gc_policy.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

import cdc.cli
from cdc.cli import gc_policy


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_the_policy_collects_young_objects_less_often_and_freezes_the_start_up_heap() -> None:
    gc_policy.apply()
    assert gc.get_threshold() == (gc_policy.YOUNG, gc_policy.MIDDLE, gc_policy.OLD)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_collector")
def test_the_cdc_program_applies_the_policy_before_running_a_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []
    monkeypatch.setattr(cdc.cli, "main", lambda: seen.append(gc.get_threshold()))
    cdc.cli.run_cli()
    assert seen == [(gc_policy.YOUNG, gc_policy.MIDDLE, gc_policy.OLD)]


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_is_still_collected_without_an_explicit_collection() -> None:
    gc_policy.apply()

    class Node:
        partner: object = None

    a, b = Node(), Node()
    a.partner, b.partner = b, a
    alive = weakref.ref(a)
    del a, b
    assert alive() is not None  # only the collector can free a cycle
    allocations: list[list[int]] = [[] for _ in range(gc_policy.YOUNG + 1000)]
    assert alive() is None
    del allocations
