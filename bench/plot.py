"""The fan-out plot: p99 latency and server CPU per delivered event against viewers.

    python -m bench.plot            # bench/results/fanout.json -> bench/results/fanout.png

One column per chunk rate; ours, the python-socketio peer, the bare
baseline and the floor (frames written straight to the transports) side by
side (solid: one process; dashed: two processes on Redis; dotted: the floor).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import RESULTS_DIR

STYLE = {
    ("ours", "embedded"): ("realtime-agent, 1 process", "#1f77b4", "-", "o"),
    ("ours", "distributed"): ("realtime-agent, 2 processes + Redis + PG", "#1f77b4", "--", "s"),
    ("peer", "embedded"): ("python-socketio + AsyncRedisManager, 1 process", "#d62728", "-", "o"),
    ("peer", "distributed"): (
        "python-socketio + AsyncRedisManager, 2 processes",
        "#d62728",
        "--",
        "s",
    ),
    ("baseline", "embedded"): ("bare Starlette send_text loop, 1 process", "#7f7f7f", "-", "^"),
    ("floor", "embedded"): (
        "floor: frames straight to the transports, 1 process",
        "#9467bd",
        ":",
        "v",
    ),
}
TARGETS = {  # (metric, rate) -> [(value, label)]
    ("p99_ms", 100.0): [
        (5, "target, 1 process: 5 ms"),
        (10, "2 processes: 10 ms"),
        (100, "1,000 viewers: 100 ms"),
    ],
    ("p99_ms", 1000.0): [(50, "target: 50 ms")],
    ("cpu_us_per_chunk", 1000.0): [(3, "target: 3 µs")],
}


def plot_fanout(
    src: Path | None = None, dst: Path | None = None, client: str = "websockets"
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src = src or RESULTS_DIR / "fanout.json"
    dst = dst or RESULTS_DIR / "fanout.png"
    doc = json.loads(src.read_text())
    rows: list[dict[str, Any]] = [r for r in doc["rows"] if r.get("client", "websockets") == client]
    rates = sorted({float(r["rate"]) for r in rows})
    metrics = [
        ("p99_ms", "p99 latency, model chunk → viewer (ms)"),
        ("cpu_us_per_chunk", "server CPU per chunk delivered to a socket (µs)"),
    ]
    fig, axes = plt.subplots(
        len(metrics), len(rates), figsize=(6.2 * len(rates), 8.5), squeeze=False
    )
    for col, rate in enumerate(rates):
        for row_i, (metric, label) in enumerate(metrics):
            ax = axes[row_i][col]
            for (impl, mode), (name, color, ls, marker) in STYLE.items():
                pts = sorted(
                    (r["viewers"], r[metric])
                    for r in rows
                    if r["impl"] == impl
                    and r["mode"] == mode
                    and float(r["rate"]) == rate
                    and r.get(metric) is not None
                )
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, ls, color=color, marker=marker, label=name, linewidth=1.8)
                # every value of realtime-agent's lines, only the last one of the others
                for x, y in pts if impl == "ours" else pts[-1:]:
                    text = f"{y:,.0f}" if y >= 100 else f"{y:.3g}"
                    left = mode == "distributed"  # two processes: labels on the left
                    ax.annotate(
                        text,
                        (x, y),
                        textcoords="offset points",
                        xytext=(-6, -3) if left else (5, 3),
                        ha="right" if left else "left",
                        fontsize=7,
                        color=color,
                    )
            for value, text in TARGETS.get((metric, rate), []):
                ax.axhline(value, color="#2ca02c", linestyle=":", linewidth=1)
                ax.annotate(
                    text,
                    (0.2, value),
                    xycoords=("axes fraction", "data"),
                    textcoords="offset points",
                    xytext=(0, 2),
                    fontsize=7,
                    color="#2ca02c",
                    ha="left",
                )
            ax.set_xscale("log")
            ax.set_xlim(7, 1800)
            ax.set_yscale("log")
            ax.set_xlabel("viewers in the session")
            ax.set_ylabel(label)
            ax.set_title(f"{rate:g} chunks/s", fontsize=11)
            ax.grid(True, which="both", alpha=0.25)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    m = doc.get("machine", {})
    fig.suptitle(
        f"Fan-out of one streaming session — {m.get('nproc')} cores, Python {m.get('python')}, "
        f"commit {m.get('commit')}, {m.get('date', '')[:10]}",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0.09, 1, 0.96))
    fig.savefig(dst, dpi=110)
    plt.close(fig)
    return dst


if __name__ == "__main__":
    print(plot_fanout())
