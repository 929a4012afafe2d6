"""Every benchmark in one run (``make bench``): the pipeline, then extraction and tagging quality.

    .venv/bin/python benchmarks/run_all.py [pipeline_bench options, e.g. --articles 500 --quick]

``pipeline_bench`` runs first, in this process (its options pass through); then
``extraction_quality.py`` and ``tagging_quality.py`` run one after the other as subprocesses
(never beside the pipeline, which would skew its timings), and their tables are appended when
they exist and succeed. A failing sub-benchmark is reported, not fatal. The combined report
goes to stdout and to ``benchmarks/results/latest.md``; the figures to ``latest.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import harness  # noqa: E402
import pipeline_bench  # noqa: E402

SUB_TIMEOUT_S = 900


def run_script(name: str, extra: list[str], json_path: Path | None) -> dict[str, Any]:
    """Run one benchmark script; its stdout (a Markdown report) and JSON, if it wrote any."""
    script = BENCH_DIR / name
    if not script.exists():
        return {"status": "absent"}
    pipeline_bench.log(f"{name}")
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(script), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=SUB_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {SUB_TIMEOUT_S} s"}
    out: dict[str, Any] = {
        "status": "ok" if proc.returncode == 0 else f"exit code {proc.returncode}",
        "seconds": time.monotonic() - start,
        "stdout": proc.stdout,
    }
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-2000:]
    if json_path is not None and json_path.exists():
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
            data.pop("per_page", None)  # per-page detail stays in the script's own output
            out["json"] = data
        except ValueError:
            pass
    return out


def section(title: str, result: dict[str, Any]) -> str:
    if result["status"] == "absent":
        return ""
    lines = [f"## {title}", ""]
    if result["status"] != "ok":
        lines.append(f"Failed ({result['status']}):")
        lines += ["", "```", result.get("stderr_tail", "").strip(), "```"]
    else:
        lines.append(result["stdout"].strip())
        lines += ["", f"({result['seconds']:.0f} s)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = pipeline_bench.parse_args(argv)
    started = time.monotonic()
    try:
        data = pipeline_bench.run(argv)
        if args.profile:
            return 0
        with tempfile.TemporaryDirectory(prefix="tradewire-bench-q-") as tmp:
            extraction = run_script(
                "extraction_quality.py",
                ["--corpus", str(args.corpus), "--json", f"{tmp}/extraction.json"],
                Path(tmp) / "extraction.json",
            )
            tagging = run_script("tagging_quality.py", [], None)
    except KeyboardInterrupt:
        pipeline_bench.log("interrupted; processes stopped")
        return 130
    except harness.BenchError as exc:
        pipeline_bench.log(f"failed: {exc}")
        return 1
    data["extraction_quality"] = extraction
    data["tagging_quality"] = tagging
    data["total_wall_s"] = time.monotonic() - started
    markdown = "\n".join(
        part
        for part in (
            data["markdown"],
            section("Extraction quality (benchmarks/extraction_quality.py)", extraction),
            section("Tagging quality (benchmarks/tagging_quality.py)", tagging),
            f"Total wall time of `benchmarks/run_all.py`: {data['total_wall_s']:.0f} s.",
        )
        if part
    )
    print(markdown)
    if not args.no_write:
        pipeline_bench.write_results(data, args.out_dir, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
