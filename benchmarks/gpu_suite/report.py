"""``summary.json`` and ``summary.md`` from ``results.jsonl``: JAX/PyTorch per case, the
issue's targets, and the ``--cases`` value that reruns what was not measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .cases import FULL, TINY
from .records import SUMMARY_JSON, SUMMARY_MD, read_records

_SPEED_FIELDS = (
    "step_seconds_median",
    "step_seconds_min",
    "step_seconds_max",
    "compile_seconds",
    "mfu",
    "xla_step_bytes",
    "peak_device_bytes",
)
_TORCH_FIELDS = (
    "case",
    "status",
    "images_per_second",
    "step_seconds_median",
    "first_step_seconds",
    "peak_device_bytes",
    "error",
    "reason",
)


def _fmt(x: float | None, spec: str = ".0f") -> str:
    return "–" if x is None else format(x, spec)


def _speed_rows(last: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per JAX case: its figures, its PyTorch peers' and the ratios."""
    peers: dict[tuple, dict[str, dict]] = {}
    for r in last.values():
        if r.get("status") == "ok" and r.get("kind") == "torch":
            key = (r["mode"], r["model"], r["image_size"], r["batch_size"])
            peers.setdefault(key, {})[r["framework"]] = r
    rows = []
    for name, r in last.items():
        if r.get("kind") != "jax":
            continue
        key = (r.get("mode"), r.get("model"), r.get("image_size"), r.get("batch_size"))
        p = peers.get(key, {}) if not r.get("remat") and r.get("parallelism") == "shard_map" else {}
        jax_ips = r.get("images_per_second") if r.get("status") == "ok" else None
        row = {"case": name, "status": r.get("status"), "jax_images_per_second": jax_ips}
        counted = {fw: x.get("params") for fw, x in p.items()}
        row["params_match"] = (
            all(n == r.get("params") for n in counted.values()) if counted and jax_ips else None
        )
        for fw in ("pytorch-eager", "pytorch-compile"):
            torch_ips = p.get(fw, {}).get("images_per_second")
            row[f"{fw}_images_per_second"] = torch_ips
            row[f"ratio_vs_{fw}"] = jax_ips / torch_ips if jax_ips and torch_ips else None
        for k in _SPEED_FIELDS:
            row[k] = r.get(k)
        rows.append(row)
    return rows


def _compile_target(text: str, row: dict[str, Any] | None) -> dict[str, Any]:
    ratio = row and row["ratio_vs_pytorch-compile"]
    return {
        "target": text,
        "measured": ratio,
        "case": row and row["case"],
        "met": (ratio >= 1.2) if row and ratio else None,
    }


def _targets(rows: list[dict[str, Any]], tiny: bool) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured figure and whether it is met."""
    sizes = TINY if tiny else FULL
    best = max(
        (
            x for x in rows
            if x["jax_images_per_second"] and "train/attention56/" in x["case"]
            and x["case"].endswith("/jax") and f"/{sizes.imagenet_size}/" in x["case"]
        ),
        key=lambda x: x["jax_images_per_second"], default=None,
    )  # fmt: skip
    c92_name = f"train/cifar_attention92/{sizes.cifar_size}/b{sizes.cifar_batches[0]}/jax"
    c92 = next((x for x in rows if x["case"] == c92_name), None)
    slower = [x["case"] for x in rows if (x["ratio_vs_pytorch-eager"] or 2) < 1]
    compared = [x for x in rows if x["ratio_vs_pytorch-eager"]]
    return [
        {
            "target": "attention56 @224 bf16 train >= 4,000 images/s",
            "measured": best and best["jax_images_per_second"],
            "case": best and best["case"],
            "met": (best["jax_images_per_second"] >= 4000) if best else None,
        },
        _compile_target("attention56 @224 >= 1.2x torch.compile (at JAX's best batch)", best),
        _compile_target("cifar_attention92 batch 1024 >= 1.2x torch.compile", c92),
        {
            "target": "no case slower than eager PyTorch",
            "measured": f"{len(slower)} slower of {len(compared)} compared",
            "case": ", ".join(slower) or None,
            "met": (not slower) if compared else None,
        },
    ]


def write_summary(
    out: Path, tiny: bool, budget_s: float | None, elapsed: float | None
) -> dict[str, Any]:
    """summary.json and summary.md from results.jsonl (also usable on a cut-short run);
    ``elapsed`` None: merged from earlier runs."""
    all_records = read_records(out)
    records = [r for r in all_records if r.get("kind") != "environment"]
    env = next((r for r in all_records if r.get("kind") == "environment"), {})
    last = {r["case"]: r for r in records}  # a rerun's record replaces an earlier one
    rows = _speed_rows(last)
    counts: dict[str, int] = {}
    for r in last.values():
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    rerun = [n for n, r in last.items() if r.get("status") in ("error", "skipped", "failed")]
    rerun = [n for n in rerun if not n.startswith("pipeline/")]  # their skip is their result
    summary = {
        "elapsed_s": elapsed,
        "budget_s": budget_s,
        "tiny": tiny,
        "device": env.get("nvidia_smi")
        or next((r.get("device_kind") for r in records if r.get("device_kind")), None),
        "versions": env.get("versions"),
        "commit": env.get("commit"),
        "counts": counts,
        "correctness": {
            n: {"status": r.get("status"), "error": r.get("error")}
            for n, r in last.items()
            if n.startswith("correctness/")
        },
        "speed": rows,
        "torch": [
            {k: r.get(k) for k in _TORCH_FIELDS} for r in last.values() if r.get("kind") == "torch"
        ],
        "pipeline": [r for n, r in last.items() if n.startswith("pipeline/")],
        "targets": _targets(rows, tiny),
        "params_mismatch": [x["case"] for x in rows if x["params_match"] is False],
        "not_measured": {
            n: r.get("error") or r.get("reason") for n, r in last.items() if n in rerun
        },
        "rerun_cases": ",".join(rerun),
    }
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / SUMMARY_MD).write_text(_markdown(summary))
    return summary


def _markdown(s: dict[str, Any]) -> str:
    """The summary as the page ``summary.md``."""
    gib = 2.0**30
    lines = [
        f"# Accelerator suite{' (--tiny)' if s['tiny'] else ''}",
        "",
        f"Device: {s['device']}. Commit {s['commit']}. "
        + (
            f"{s['elapsed_s']:.0f} s"
            + (f" of a {s['budget_s']:.0f} s budget. " if s["budget_s"] else ". ")
            if s["elapsed_s"] is not None
            else "Merged from earlier runs (--summarize). "
        )
        + "Cases: "
        + ", ".join(f"{v} {k}" for k, v in sorted(s["counts"].items())),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in (s["versions"] or {}).items()),
        "",
        "## Correctness",
        "",
        "| case | status | error |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {c['status']} | {c['error'] or ''} |" for n, c in s["correctness"].items()]
    lines += [
        "",
        "## Train and eval step, bf16 (JAX) against PyTorch (bf16 autocast, channels-last)",
        "",
        "| case | JAX images/s | step ms median (min-max) | compile s | MFU | XLA step GiB "
        "| eager images/s | compile images/s | JAX/eager | JAX/compile |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in s["speed"]:
        if x["jax_images_per_second"] is None:
            lines.append(f"| {x['case']} | {x['status']} | | | | | | | | |")
            continue
        ms = [1e3 * x[k] for k in ("step_seconds_median", "step_seconds_min", "step_seconds_max")]
        mfu = f"{100 * x['mfu']:.1f}%" if x["mfu"] is not None else "–"
        mem = _fmt(x["xla_step_bytes"] and x["xla_step_bytes"] / gib, ".1f")
        lines.append(
            f"| {x['case']} | {x['jax_images_per_second']:,.0f} | {ms[0]:.1f} ({ms[1]:.1f}-"
            f"{ms[2]:.1f}) | {_fmt(x['compile_seconds'], '.1f')} | {mfu} | {mem} | "
            f"{_fmt(x['pytorch-eager_images_per_second'], ',.0f')} | "
            f"{_fmt(x['pytorch-compile_images_per_second'], ',.0f')} | "
            f"{_fmt(x['ratio_vs_pytorch-eager'], '.2f')} | "
            f"{_fmt(x['ratio_vs_pytorch-compile'], '.2f')} |"
        )
    compared = sum(x["params_match"] is not None for x in s["speed"])
    lines += [
        "",
        f"Parameter counts, JAX against PyTorch: {compared - len(s['params_mismatch'])} of "
        f"{compared} compared cases agree"
        + (f"; differ: {', '.join(s['params_mismatch'])}." if s["params_mismatch"] else "."),
    ]
    lines += ["", "## Targets", "", "| target | measured | case | met |", "|---|---|---|---|"]
    for t in s["targets"]:
        m = t["measured"]
        m = f"{m:,.2f}" if isinstance(m, float) else ("–" if m is None else m)
        lines.append(f"| {t['target']} | {m} | {t['case'] or ''} | {t['met']} |")
    lines += ["", "## Input pipeline", ""]
    for p in s["pipeline"]:
        lines.append(
            f"- {p['case']}: {p.get('status')}"
            f"{' (' + p['reason'] + ')' if p.get('reason') else ''}; "
            f"{_fmt(p.get('per_core_images_per_second'))} images/s per core; the fastest "
            f"train step ({p.get('train_case') or p.get('case')}) takes "
            f"{_fmt(p.get('train_images_per_second'))} images/s: "
            f"{_fmt(p.get('cores_needed'))} core(s) to feed it."
        )
    lines += ["", "## Not measured (skipped, failed or errors)", ""]
    lines += [f"- {n}: {why}" for n, why in s["not_measured"].items()] or ["- none"]
    if s["rerun_cases"]:
        lines += ["", "Rerun them with:", "", f"    --cases={s['rerun_cases']}"]
    return "\n".join(lines) + "\n"
