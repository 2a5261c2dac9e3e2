"""Small server-rendered SVG charts for the auditor's desk and the HTML report.

No JavaScript and no external assets: each chart is one ``<svg role="img">`` with a title for
screen readers, and the pages show the same figures as a table beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from markupsafe import Markup, escape

# Colour-blind-safe palette (Okabe–Ito), dark enough on white for lines and bars.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 40, 16, 40


def line_chart(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> Markup:
    """Lines of percentages (0–1) over ``labels``; ``None`` leaves a gap."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    step = plot_w / max(n - 1, 1)

    def x(i: int) -> float:
        return LEFT + (i * step if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v)

    parts = [_open(title), _grid(plot_w, plot_h), _x_labels(labels, x)]
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        path: list[str] = []
        pen_up = True
        for i, v in enumerate(values):
            if v is None:
                pen_up = True
                continue
            path.append(f"{'M' if pen_up else 'L'}{x(i):.1f},{y(v):.1f}")
            pen_up = False
        if path:
            parts.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2.5"'
                f' stroke-dasharray="{_dash(k)}"><title>{escape(name)}</title></path>'
            )
        # A marker on every point: a period between two gaps (or a ledger's first day) has no
        # line to draw, and the points say where the figures are.
        for i, v in enumerate(values):
            if v is not None:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                    f"<title>{escape(name)}, {escape(labels[i])}: {v:.1%}</title></circle>"
                )
    parts.append(_legend(list(series)))
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(title: str, labels: Sequence[str], series: Mapping[str, Sequence[int]]) -> Markup:
    """Bars of counts over ``labels``, each split into ``series`` shown as shares of the bar."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.8, 48), 1)
    parts = [_open(title), _grid(plot_w, plot_h), _x_labels(labels, lambda i: LEFT + slot * (i + 0.5))]
    names = list(series)
    for i in range(len(labels)):
        total = sum(series[name][i] for name in names) or 1
        top = float(TOP + plot_h)
        for k, name in enumerate(names):
            share = series[name][i] / total
            h = plot_h * share
            top -= h
            if h > 0:
                parts.append(
                    f'<rect x="{LEFT + slot * i + (slot - bar) / 2:.1f}" y="{top:.1f}" width="{bar:.1f}"'
                    f' height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                    f"<title>{escape(labels[i])}: {escape(name)} {share:.0%}</title></rect>"
                )
    parts.append(_legend(names))
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str) -> str:
    ident = "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())[:40]
    return (
        f'<svg class="chart" role="img" aria-labelledby="{ident}" viewBox="0 0 {WIDTH} {HEIGHT + 28}"'
        f' xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">'
        f'<title id="{ident}">{escape(title)}</title>'
    )


def _grid(plot_w: float, plot_h: float) -> str:
    lines = []
    for q in (0, 0.25, 0.5, 0.75, 1):
        y = TOP + plot_h * (1 - q)
        lines.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#767676"'
            f' stroke-width="{1 if q in (0, 1) else 0.5}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333">{q:.0%}</text>'
        )
    return "".join(lines)


def _x_labels(labels: Sequence[str], x: Callable[[int], float]) -> str:
    if not labels:
        return ""
    every = max(1, -(-len(labels) // 7))  # at most 7 labels: they never overlap
    out = []
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="#333">'
                f"{escape(label)}</text>"
            )
    return "".join(out)


def _legend(names: Sequence[str]) -> str:
    out = []
    x = LEFT
    for k, name in enumerate(names):
        colour = PALETTE[k % len(PALETTE)]
        out.append(
            f'<rect x="{x}" y="{HEIGHT + 8}" width="14" height="14" fill="{colour}"/>'
            f'<text x="{x + 20}" y="{HEIGHT + 19}" fill="#222">{escape(name)}</text>'
        )
        x += 28 + 7 * len(name)
    return "".join(out)


def _dash(k: int) -> str:
    # Lines differ by pattern too, not by colour alone (WCAG 1.4.1).
    return ("none", "6 3", "2 3", "8 3 2 3")[k % 4]
