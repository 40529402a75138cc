"""The hand-written probe set (tests/data/probes, issue 19) on a model, through `Chat`: the per-category table, issue
19's target metrics, the time taken and the load average.

    python bench/probes.py                        the built-in model, guard off (the model alone)
    python bench/probes.py --guard                ... and again with the default guard (minichat.safety)
    python bench/probes.py --model smollm2 --limit 10    SmolLM2-135M-Instruct, its own system prompt, no tools
    python bench/probes.py --json results.json    every probe's result (id, ok, checks, reply, calls) to read
    python bench/probes.py --compare A.json B.json    two such runs, probe by probe (probe_compare.py: the probes
                                                  right for one model only, and the exact sign test on them)

Each probe is one fresh Chat, greedy, set up as `minichat chat` sets up the model (minichat/builtin/probes.py).
A model not trained by a minichat recipe gets no tools (as in `minichat chat`), so its tool categories score 0:
that is the honest figure for "what does this model do with these messages", not a tool-use comparison.
There is no peer library to time against: this is an evaluation run, timed so its cost is known. The load average
is printed before and after, since two cores are shared and the time depends on it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from minichat.builtin.probes import (CATEGORIES, default_probe_dir, failures, format_report,  # noqa: E402
                                     load_probes, run_probes)


def load(name: str | None):
    from minichat.cli import _load  # the CLI's loader: a named model ("smollm2") is fetched once and cached

    return _load(name)


def limited(probes, per_category: int | None):
    if per_category is None:
        return probes
    out, seen = [], dict.fromkeys(CATEGORIES, 0)
    for p in probes:
        if seen[p.category] < per_category:
            seen[p.category] += 1
            out.append(p)
    return out


def compare_runs(first: str, second: str) -> int:
    from minichat.builtin.probe_compare import compare, format_comparison

    runs = []
    for path in (first, second):
        try:
            runs.append(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise SystemExit(f"--compare: cannot read {path}: {e}") from None
    names = (Path(first).stem, Path(second).stem)
    for key in ("model", "guard"):  # the model alone, then with the guard when both runs have it
        if key in runs[0] and key in runs[1]:
            print(f"== {'the model alone' if key == 'model' else 'with the default guard'}: {names[0]} vs {names[1]}")
            try:
                print(format_comparison(compare(runs[0][key]["results"], runs[1][key]["results"]), names))
            except (KeyError, TypeError, ValueError) as e:
                raise SystemExit(f"--compare: {e}") from None
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", help="the probe folder (default: tests/data/probes)")
    ap.add_argument("--model", help="a model path or 'smollm2' (default: the built-in model)")
    ap.add_argument("--guard", action="store_true", help="also run with the default guard")
    ap.add_argument("--limit", type=int, help="at most this many probes per category (slow models)")
    ap.add_argument("--failures", type=int, default=2, help="wrong probes to print per category")
    ap.add_argument("--json", help="write every probe's result here")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="compare two --json runs; runs nothing")
    args = ap.parse_args()
    if args.compare:
        return compare_runs(*args.compare)

    folder = Path(args.probes) if args.probes else default_probe_dir()
    if folder is None:
        raise SystemExit("no probe set found: pass --probes DIR")
    probes = limited(load_probes(folder), args.limit)
    t = time.perf_counter()
    model, tok = load(args.model)
    print(f"model: {args.model or 'built-in'} ({time.perf_counter() - t:.1f}s to load); {len(probes)} probes from "
          f"{folder}; {os.cpu_count()} cpus")
    runs = {}
    for guard in ([False, True] if args.guard else [False]):
        before = os.getloadavg()
        report = run_probes(model, tok, probes, guard=guard, progress=lambda m: print(m, file=sys.stderr))
        after = os.getloadavg()
        runs["guard" if guard else "model"] = report
        per = [r.seconds for r in report["results"]]
        print(f"\n== {'with the default guard' if guard else 'the model alone (no guard)'}")
        print(format_report(report))
        print(f"time: {report['seconds']:.1f}s for {len(per)} probes, median {statistics.median(per):.3f}s, "
              f"slowest {max(per):.2f}s; load average before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, "
              f"after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
        for r in failures(report, args.failures):
            calls = ", ".join(f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})" for c in r.calls)
            print(f"  wrong {r.id:<10} {('[' + calls + '] ') if calls else ''}{r.reply[:100]!r}")
    if args.json:
        out = {k: {"metrics": v["metrics"], "categories": v["categories"], "seconds": v["seconds"],
                   "results": [r.__dict__ for r in v["results"]]} for k, v in runs.items()}
        Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
