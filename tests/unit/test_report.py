"""Report.carry: a run that reconnected counts the work of the attempt the lost connection cut
short, but not its failures (the next attempt planned afresh and tried those files again)."""

from __future__ import annotations

from collections import Counter

from sftpmirror.api import Result
from sftpmirror.engine.model import Failure, Op, Plan, Report


def test_carry_adds_the_work_and_drops_the_failures() -> None:
    earlier = Report(
        done=Counter({Op.COPY: 3, Op.MKDIR: 1}),
        bytes_copied=300,
        copied={"a": (100, "aa", 1), "b": (100, "b-old", 1)},
        failures=[Failure("c", Op.COPY, "connection lost")],
        elapsed=1.5,
    )
    final = Report(
        done=Counter({Op.COPY: 2, Op.DELETE: 1}),
        bytes_copied=200,
        copied={"b": (100, "b-new", 2), "d": (100, "dd", 2)},
        elapsed=0.5,
        reconnects=1,
    )
    final.carry(earlier)
    assert final.done == Counter({Op.COPY: 5, Op.MKDIR: 1, Op.DELETE: 1})
    assert final.bytes_copied == 500
    assert final.copied == {"a": (100, "aa", 1), "b": (100, "b-new", 2), "d": (100, "dd", 2)}
    assert final.failures == []
    assert final.elapsed == 2.0
    assert final.reconnects == 1


def test_the_summary_says_it_reconnected() -> None:
    result = Result(Plan(phases=()), Report(done=Counter({Op.COPY: 1}), reconnects=2))
    assert result.summary().endswith("; reconnected 2 time(s)")
    assert result.as_json()["reconnects"] == 2
    assert "reconnected" not in Result(Plan(phases=()), Report()).summary()
