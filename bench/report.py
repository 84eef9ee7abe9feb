"""The headline table: one row per target, measured value, target, and whether it holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One target: `measured` is shown as is; `holds` was decided by the benchmark that measured it."""

    benchmark: str
    measured: str
    target: str
    holds: bool
    why: str = ""
    """When it is missed: what the benchmark found to be the cause."""


@dataclass(frozen=True)
class Detail:
    """A supporting table printed under the headline one (e.g. every poll policy's figures)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def verdict(holds: bool) -> str:
    return "holds" if holds else "MISSED"


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
