"""Writing the results: Markdown table, JSON and the PNG chart of ratios."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.run import ALL, LABEL, PEER, Figure, Results, Target, as_json, fmt

COLUMNS = ("ours-sync", "ours-aio", "azid-sync", "azid-aio", "msal")


def cell(fig: Figure | None) -> str:
    if fig is None:
        return ""
    if fig.unit == "-":
        return fig.note.rsplit(".", 1)[-1] if fig.note else ""
    if not fig.samples:
        return ""
    if fig.capped and fig.cap is not None and fig.median is not None and fig.median >= fig.cap:
        return f">{fig.cap:g} s (cap)"
    med, low = fmt(fig.median, fig.unit), fmt(fig.min, fig.unit)
    text = med if len(fig.samples) == 1 or med == low else f"{med} (min {low})"
    if fig.capped:
        text += " (some runs hit the cap)"
    return text


def ratio_cell(res: Results, fig: Figure | None, impl: str) -> str:
    if fig is None or fig.unit in ("-",) or not fig.median:
        return ""
    peer = res.get(fig.scenario, fig.metric, PEER[impl])
    if peer is None or not peer.median:
        return ""
    r = fig.median / peer.median
    prefix = "<" if (peer.capped and peer.median >= (peer.cap or math.inf)) else ""
    return f"{prefix}{r:.3g}x"


def markdown(res: Results, total: float, meta: dict[str, str]) -> str:
    lines = [
        f"# Benchmark results ({res.mode} mode)",
        "",
        f"{meta.get('platform')}, Python {meta.get('python')}; azure-imds-credential "
        f"{meta.get('azure-imds-credential')}, azure-identity {meta.get('azure-identity')}, msal "
        f"{meta.get('msal')}, azure-core {meta.get('azure-core')}, aiohttp {meta.get('aiohttp')}. "
        f"Total {total:.0f} s.",
        "",
        "Median (min) over the repetitions. Ratio: ours / azure-identity of the same flavour "
        "(sync / aio); below 1 is better for times, requests and memory.",
        "",
        "## Targets",
        "",
        "| scenario | target | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for t in res.targets:
        state = {True: "**met**", False: "**MISSED**", None: "n/a"}[t.met]
        lines.append(f"| {t.scenario} | {t.text} | {t.figure} | {state} |")
    lines += [
        "",
        "## All figures",
        "",
        "| scenario | metric | "
        + " | ".join(LABEL[c] for c in COLUMNS)
        + " | ratio sync | ratio aio | note |",
        "| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " | --- | --- | --- |",
    ]
    seen: list[tuple[str, str]] = []
    for fig in res.figures:
        key = (fig.scenario, fig.metric)
        if key in seen:
            continue
        seen.append(key)
        figs = {f.impl: f for f in res.figures if (f.scenario, f.metric) == key}
        extra = [f"{impl.replace('+', ', ')}: {cell(f)}" for impl, f in figs.items() if impl not in ALL]
        # Group implementations by note, so that a note shared by all is written once.
        groups: dict[str, list[str]] = {}
        for impl, f in figs.items():
            if impl in ALL and f.note and f.unit != "-":
                groups.setdefault(f.note, []).append(LABEL[impl])
        if len(groups) == 1:
            notes = list(groups)
        else:
            notes = [f"{', '.join(who)}: {text}" for text, who in groups.items()]
        note = "; ".join(extra + notes)
        lines.append(
            f"| {fig.scenario} | {fig.metric} | "
            + " | ".join(cell(figs.get(c)) for c in COLUMNS)
            + f" | {ratio_cell(res, figs.get('ours-sync'), 'ours-sync')}"
            + f" | {ratio_cell(res, figs.get('ours-aio'), 'ours-aio')} | {note} |"
        )
    if res.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in res.notes]
    lines += ["", "Chart: `bench/results/ratios.png` (ours / azure-identity per target, log scale).", ""]
    return "\n".join(lines)


def short_label(t: Target) -> str:
    flavour = "sync" if t.text.startswith(LABEL["ours-sync"]) else "aio"
    what = " get_token_info" if "get_token_info" in t.text else ""
    return f"{t.scenario}{what} ({flavour})"


def chart(res: Results, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart", flush=True)
        return False
    rows = [t for t in res.targets if t.ratio]
    if not rows:
        return False
    labels = [short_label(t) for t in rows]
    values = [t.ratio for t in rows]
    colors = ["#2e7d32" if t.met else "#c62828" for t in rows]
    fig, ax = plt.subplots(figsize=(11, 0.38 * len(rows) + 1.6))
    ys = range(len(rows))
    ax.barh(list(ys), values, color=colors)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    for y, v in zip(ys, values, strict=True):
        ax.text(v, y, f" {v:.3g}x", va="center", fontsize=7)
    ax.set_xlabel("ours / azure-identity, same flavour (log scale; left of 1 is better)")
    ax.set_title(f"azure_imds_credential vs azure-identity ({res.mode} mode); green: target met, red: missed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_all(res: Results, out: Path, total: float, meta: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if res.mode == "full" else "-quick"
    data: dict[str, Any] = as_json(res, total, meta)
    (out / f"results{suffix}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"results{suffix}.md").write_text(markdown(res, total, meta))
    chart(res, out / f"ratios{suffix}.png")
    if res.mode == "quick" and not (out / "ratios.png").exists():
        chart(res, out / "ratios.png")


def replot(json_path: Path) -> None:
    """Redraw the chart (and the Markdown) from a results JSON, without measuring again."""
    data = json.loads(json_path.read_text())
    res = Results(data["mode"])
    res.figures = [
        Figure(**{k: v for k, v in f.items() if k not in ("median", "min")}) for f in data["figures"]
    ]
    res.targets = [Target(**t) for t in data["targets"]]
    res.notes = data["notes"]
    suffix = "" if res.mode == "full" else "-quick"
    (json_path.parent / f"results{suffix}.md").write_text(markdown(res, data["seconds"], data["versions"]))
    chart(res, json_path.parent / f"ratios{suffix}.png")


if __name__ == "__main__":
    import sys

    replot(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/results.json"))
