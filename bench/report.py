"""The headline table: one row per target, measured value, target, and whether it holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import Spread


@dataclass(frozen=True)
class Row:
    """One target: `measured` is shown as is; `holds` was decided by the benchmark that measured it: True,
    False, or None when the spread of its rounds straddles the target (`Spread.verdict`), so that no run
    on a busy machine can flip it."""

    benchmark: str
    measured: str
    target: str
    holds: bool | None
    why: str = ""
    """When it is missed or unstable: what the benchmark found to be the cause."""

    @classmethod
    def judged(
        cls,
        benchmark: str,
        measured: str,
        target: float,
        spread: Spread,
        also: bool = True,
        condition: str = "",
        why: str = "",
        at_least: bool = False,
    ) -> Row:
        """A row whose verdict is the spread's against `target` (a ratio that must stay at or below it, or at
        or above it with `at_least`); `also` is any further condition the row needs (all answers right,
        say), named in the target by `condition`. A failed condition is MISSED whatever the spread: a wrong
        answer is not noise; `why` then says what failed."""
        shown = f"{'>=' if at_least else '<='} {target:g}x" + (f", {condition}" if condition else "")
        if not also:
            return cls(benchmark, measured, shown, False, why)
        holds = spread.verdict(target, at_least=at_least)
        if holds is None:
            why = (
                f"the middle half of the rounds ({spread.low:.2f}-{spread.high:.2f}x) lies on both sides of "
                f"{target:g}x: the machine was too noisy to tell; run again on a quieter one"
            )
        return cls(benchmark, measured, shown, holds, why)


@dataclass(frozen=True)
class Detail:
    """A supporting table printed under the headline one (e.g. every poll policy's figures)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def verdict(holds: bool | None) -> str:
    return "unstable" if holds is None else "holds" if holds else "MISSED"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, columns padded to their widest cell; also valid Markdown."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def render_rows(rows: Sequence[Row]) -> str:
    return render_table(
        ("benchmark", "measured", "target", "verdict"),
        [(row.benchmark, row.measured, row.target, verdict(row.holds)) for row in rows],
    )


def render_detail(detail: Detail) -> str:
    return f"{detail.title}\n\n{render_table(detail.header, detail.rows)}"


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("inf")
