"""Server-rendered SVG charts for the console's front page (no script, no chart library): bars of paid top-up volume
by hour and of the daily top-up success rate. Every number is drawn as text too (a ``<title>`` per bar)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from bot.desk import DayRate
from bot.money import yuan

W, H, PAD_L, PAD_R, PAD_B, PAD_T = 560, 180, 44, 16, 22, 10


def _frame(title: str, body: list[str], y_labels: Sequence[tuple[float, str]]) -> Markup:
    plot_h = H - PAD_B - PAD_T
    grid = []
    for frac, label in y_labels:
        y = PAD_T + plot_h * (1 - frac)
        grid.append(f'<line class="grid" x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}"/>')
        grid.append(f'<text class="axis" x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    svg = (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(grid)}{''.join(body)}</svg>"
    )
    return Markup(svg)  # noqa: S704 — every value above is a number or escaped


def hourly_volume(title: str, hourly_fen: Sequence[int]) -> Markup:
    """24 bars, one per local hour, height = yuan paid in that hour."""
    top = max(max(hourly_fen), 100)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_B - PAD_T
    step = plot_w / 24
    body = []
    for hour, amount in enumerate(hourly_fen):
        h = plot_h * amount / top
        x = PAD_L + hour * step + 2
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{step - 4:.1f}" height="{h:.1f}">'
            f"<title>{hour:02d}:00 {yuan(amount)}</title></rect>"
        )
        if hour % 3 == 0:
            body.append(f'<text class="axis" x="{x + (step - 4) / 2:.1f}" y="{H - 6}" text-anchor="middle">{hour:02d}</text>')
    return _frame(title, body, [(0, "0"), (0.5, yuan(top // 2)), (1, yuan(top))])


def success_rate(title: str, days: Sequence[DayRate], none_label: str) -> Markup:
    """One bar per day: share of finished top-up orders that were paid; a day without orders shows a dot."""
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_B - PAD_T
    step = plot_w / max(len(days), 1)
    body = []
    for i, d in enumerate(days):
        x = PAD_L + i * step + 1
        rate = d.rate
        if rate is None:
            cx = x + (step - 2) / 2
            body.append(
                f'<circle class="none" cx="{cx:.1f}" cy="{PAD_T + plot_h - 2}" r="1.5"><title>{d.day:%m-%d} {escape(none_label)}</title></circle>'
            )
        else:
            h = plot_h * rate
            cls = "bar" if rate >= 0.9 else "bar low"
            body.append(
                f'<rect class="{cls}" x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{step - 2:.1f}" height="{h:.1f}">'
                f"<title>{d.day:%m-%d} {rate:.0%} ({d.paid}/{d.finished})</title></rect>"
            )
        if i % 5 == 0 or i == len(days) - 1:
            body.append(f'<text class="axis" x="{x + (step - 2) / 2:.1f}" y="{H - 6}" text-anchor="middle">{d.day:%m-%d}</text>')
    return _frame(title, body, [(0, "0%"), (0.5, "50%"), (1, "100%")])
