"""Benchmark of language understanding: accuracy on our held-out messages and public sets, latency, throughput.

Usage: .venv/bin/python bench/nlu.py [--data ../shared/data] [--runs 3] [--limit 3000] [--speed-only]

Prints medians of several runs for timings, and the core count. Public sets under ../shared/data are read
for evaluation only (nothing here trains a shipped model). Results go in docs/bench-nlu.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kefu.nlp.evaluation import evaluate, read_labelled_csv  # noqa: E402
from kefu.nlp.intents import OUT_OF_SCOPE  # noqa: E402
from kefu.nlp.service import pipeline_for  # noqa: E402

EVAL = ROOT / "kefu" / "nlp" / "data" / "eval"
# Same list as scripts/derive_clinc_oos.py (CLINC intents outside shopping); their *test* split is unseen.
sys.path.insert(0, str(ROOT / "scripts"))
from derive_clinc_oos import UNRELATED  # noqa: E402

EMOTION_MAP_ZH = {"angry": "anger", "fear": "anxiety", "sad": "sadness", "happy": "joy", "surprise": "surprise",
                  "neutral": "neutral"}
EKMAN = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
EKMAN_MAP = {"anger": "anger", "disgust": "anger", "fear": "anxiety", "joy": "joy", "neutral": "neutral",
             "sadness": "sadness", "surprise": "surprise"}


def f1(gold: list[bool], pred: list[bool]) -> dict[str, float]:
    tp = sum(g and p for g, p in zip(gold, pred, strict=True))
    fp = sum(p and not g for g, p in zip(gold, pred, strict=True))
    fn = sum(g and not p for g, p in zip(gold, pred, strict=True))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(prec, 4), "recall": round(rec, 4),
            "f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0, "n": len(gold)}


def held_out() -> dict[str, object]:
    texts, gold = read_labelled_csv(EVAL / "heldout.csv")
    pred = [u.intent for u in pipeline_for().analyse_batch(texts)]
    r = evaluate(gold, pred, top_confusions=5)
    return {"n": r.n, "accuracy": round(r.accuracy, 4), "macro_f1": round(r.macro_f1, 4),
            "oos_precision": r.oos_precision, "oos_recall": r.oos_recall,
            "worst_confusions": [f"{g}->{p}:{c}" for g, p, c in r.confusions]}


def clinc(data: Path) -> dict[str, object]:
    raw = json.loads((data / "clinc150" / "data_full.json").read_text("utf-8"))
    pipe = pipeline_for()
    oos = [t for t, _ in raw["oos_test"]]
    oos_pred = [u.intent for u in pipe.analyse_batch(oos)]
    unrelated = [t for t, i in raw["test"] if i in UNRELATED]
    unrel_pred = [u.intent for u in pipe.analyse_batch(unrelated)]
    return {"oos_test_n": len(oos), "oos_test_detected": round(sum(p == OUT_OF_SCOPE for p in oos_pred) / len(oos), 4),
            "unrelated_test_n": len(unrelated),
            "unrelated_test_detected": round(sum(p == OUT_OF_SCOPE for p in unrel_pred) / len(unrelated), 4)}


def anger_sets() -> dict[str, object]:
    out = {}
    for name in ("anger_service", "anger_service_holdout"):
        rows = list(csv.DictReader((EVAL / f"{name}.csv").open(encoding="utf-8")))
        us = pipeline_for().analyse_batch([r["text"] for r in rows])
        out[name] = f1([r["label"] == "anger" for r in rows], [u.emotion.label == "anger" for u in us])
    return out


def smp2020(data: Path, limit: int) -> dict[str, object]:
    rows = json.loads((data / "smp2020-ewect-virus" / "virus_eval_labeled.txt").read_text("utf-8"))[:limit]
    us = pipeline_for().analyse_batch([r["content"] for r in rows])
    gold = [EMOTION_MAP_ZH.get(r["label"], "neutral") for r in rows]
    pred = [u.emotion.label for u in us]
    return {"n": len(rows), "six_class_accuracy": round(sum(g == p for g, p in zip(gold, pred, strict=True)) / len(rows), 4),
            "anger": f1([g == "anger" for g in gold], [p == "anger" for p in pred])}


def goemotions(data: Path, limit: int) -> dict[str, object]:
    rows = []
    for line in (data / "goemotions" / "ekman" / "test.tsv").read_text("utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and "," not in parts[1]:  # single-label comments only
            rows.append((parts[0], EKMAN_MAP[EKMAN[int(parts[1])]]))
    rows = rows[:limit]
    us = pipeline_for().analyse_batch([t for t, _ in rows])
    gold = [g for _, g in rows]
    pred = [u.emotion.label for u in us]
    return {"n": len(rows), "six_class_accuracy": round(sum(g == p for g, p in zip(gold, pred, strict=True)) / len(rows), 4),
            "anger": f1([g == "anger" for g in gold], [p == "anger" for p in pred])}


def zh_sentiment(data: Path, limit: int) -> dict[str, object]:
    out = {}
    rng = random.Random(1)
    for name in ("waimai_10k.csv", "ChnSentiCorp_htl_all.csv"):
        rows = [r for r in csv.DictReader((data / "zh-sentiment" / name).open(encoding="utf-8", errors="replace"))
                if r.get("review")]
        rows = rng.sample(rows, min(limit, len(rows)))
        us = pipeline_for().analyse_batch([r["review"] for r in rows])
        # Binary sets: the sign of the score decides; "neutral" answers are counted separately.
        correct = sum((u.sentiment.score > 0) == (r["label"] == "1") for r, u in zip(rows, us, strict=True)
                      if u.sentiment.score != 0)
        decided = sum(u.sentiment.score != 0 for u in us)
        out[name] = {"n": len(rows), "decided": decided,
                     "accuracy_when_decided": round(correct / decided, 4) if decided else None,
                     "negative_recall": round(sum(u.sentiment.polarity == "negative" for r, u in
                                                  zip(rows, us, strict=True) if r["label"] == "0")
                                              / max(1, sum(r["label"] == "0" for r in rows)), 4)}
    return out


def latency(runs: int) -> dict[str, object]:
    texts, _ = read_labelled_csv(EVAL / "heldout.csv")
    pipe = pipeline_for()
    pipe.analyse("warm up")
    # Wall time and this thread's CPU time: on a shared machine the CPU figure is what one core delivers.
    p50s, p99s, cpu50s, cpu99s, tputs, cpu_tputs = [], [], [], [], [], []
    batch = (texts * (10_000 // len(texts) + 1))[:10_000]
    for _ in range(runs):
        xs, cs = [], []
        for t in texts:
            start, cpu = time.perf_counter(), time.thread_time()
            pipe.analyse(t)
            xs.append(time.perf_counter() - start)
            cs.append(time.thread_time() - cpu)
        xs.sort()
        cs.sort()
        p50s.append(xs[len(xs) // 2] * 1000)
        p99s.append(xs[int(len(xs) * 0.99) - 1] * 1000)
        cpu50s.append(cs[len(cs) // 2] * 1000)
        cpu99s.append(cs[int(len(cs) * 0.99) - 1] * 1000)
        start, cpu = time.perf_counter(), time.thread_time()
        pipe.analyse_batch(batch)
        tputs.append(len(batch) / (time.perf_counter() - start))
        cpu_tputs.append(len(batch) / (time.thread_time() - cpu))
    return {"single_p50_ms": round(statistics.median(p50s), 3), "single_p99_ms": round(statistics.median(p99s), 3),
            "single_cpu_p50_ms": round(statistics.median(cpu50s), 3),
            "single_cpu_p99_ms": round(statistics.median(cpu99s), 3),
            "batch_texts_per_s": round(statistics.median(tputs)),
            "batch_texts_per_cpu_s": round(statistics.median(cpu_tputs)), "messages": len(texts), "runs": runs}


def cli_predict(runs: int) -> dict[str, object]:
    texts, _ = read_labelled_csv(EVAL / "heldout.csv")
    lines = "\n".join((texts * (10_000 // len(texts) + 1))[:10_000]) + "\n"
    kefu = str(Path(sys.executable).with_name("kefu"))
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([kefu, "nlu", "predict"], input=lines.encode(), capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
        assert done.stdout.count(b"\n") == 10_000
    return {"lines": 10_000, "wall_s_median": round(statistics.median(walls), 2), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=3000, help="max rows per public set")
    ap.add_argument("--speed-only", action="store_true", help="only latency and throughput")
    args = ap.parse_args()
    data = Path(args.data)
    start = time.perf_counter()
    pipeline_for()
    load_s = time.perf_counter() - start
    report: dict[str, object] = {"cores": os.cpu_count(), "load_average": os.getloadavg(),
                                 "model_load_s": round(load_s, 2)}
    if not args.speed_only:
        report["held_out"] = held_out()
        report["anger_service"] = anger_sets()
    if data.exists() and not args.speed_only:
        report["clinc150"] = clinc(data)
        report["smp2020_ewect_virus_eval"] = smp2020(data, args.limit)
        report["goemotions_ekman_test"] = goemotions(data, args.limit)
        report["zh_sentiment"] = zh_sentiment(data, args.limit)
    report["latency"] = latency(args.runs)
    report["cli_predict_10k"] = cli_predict(args.runs)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
