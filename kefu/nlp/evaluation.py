"""Intent evaluation: the figures ``kefu nlu eval`` prints and ``bench/nlu.py`` records."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kefu.nlp.intents import OUT_OF_SCOPE


@dataclass
class IntentReport:
    n: int
    accuracy: float
    macro_f1: float
    per_intent: dict[str, dict[str, float]]
    oos_precision: float | None
    oos_recall: float | None
    in_scope_accuracy: float | None
    confusions: list[tuple[str, str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1, "per_intent": self.per_intent,
                "oos_precision": self.oos_precision, "oos_recall": self.oos_recall,
                "in_scope_accuracy": self.in_scope_accuracy,
                "worst_confusions": [{"gold": g, "predicted": p, "count": c} for g, p, c in self.confusions]}

    def lines(self) -> list[str]:
        """A human-readable report."""
        out = [f"examples        {self.n}", f"accuracy        {self.accuracy:.4f}",
               f"macro-F1        {self.macro_f1:.4f}"]
        if self.in_scope_accuracy is not None:
            out.append(f"in-scope acc.   {self.in_scope_accuracy:.4f}")
        fmt = "n/a" if self.oos_precision is None else f"{self.oos_precision:.4f}"
        fmt_r = "n/a" if self.oos_recall is None else f"{self.oos_recall:.4f}"
        out.append(f"out-of-scope    precision {fmt}  recall {fmt_r}")
        out.append("")
        out.append(f"{'intent':32} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}")
        for name, m in sorted(self.per_intent.items(), key=lambda kv: (kv[1]["f1"], kv[0])):
            out.append(f"{name:32} {m['precision']:9.3f} {m['recall']:7.3f} {m['f1']:7.3f} {int(m['support']):7d}")
        if self.confusions:
            out.append("")
            out.append("worst confusions (gold -> predicted: count)")
            out.extend(f"  {g} -> {p}: {c}" for g, p, c in self.confusions)
        return out


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def evaluate(gold: Sequence[str], predicted: Sequence[str], *, top_confusions: int = 15) -> IntentReport:
    """Accuracy, macro-F1 over the gold intents, per-intent figures, out-of-scope precision/recall."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    n = len(gold)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    confusions: Counter[tuple[str, str]] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
            confusions[(g, p)] += 1
    support = Counter(gold)
    per: dict[str, dict[str, float]] = {}
    for name in sorted(support):
        prec = tp[name] / (tp[name] + fp[name]) if tp[name] + fp[name] else 0.0
        rec = tp[name] / support[name]
        per[name] = {"precision": prec, "recall": rec, "f1": _f1(prec, rec), "support": float(support[name])}
    macro = sum(m["f1"] for m in per.values()) / len(per) if per else 0.0
    oos_pred = tp[OUT_OF_SCOPE] + fp[OUT_OF_SCOPE]
    oos_prec = tp[OUT_OF_SCOPE] / oos_pred if oos_pred else None
    oos_rec = tp[OUT_OF_SCOPE] / support[OUT_OF_SCOPE] if support[OUT_OF_SCOPE] else None
    in_scope = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != OUT_OF_SCOPE]
    in_acc = sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else None
    return IntentReport(
        n=n, accuracy=(sum(tp.values()) / n) if n else 0.0, macro_f1=macro, per_intent=per,
        oos_precision=oos_prec, oos_recall=oos_rec, in_scope_accuracy=in_acc,
        confusions=[(g, p, c) for (g, p), c in confusions.most_common(top_confusions)])


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    """Read a CSV with a header containing ``text`` and ``intent`` columns (UTF-8, BOM tolerated)."""
    texts: list[str] = []
    intents: list[str] = []
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "text" not in reader.fieldnames or "intent" not in reader.fieldnames:
            raise ValueError(f"{path}: the header must contain the columns text and intent")
        for row in reader:
            texts.append(row.get("text") or "")
            intents.append((row.get("intent") or "").strip())
    return texts, intents
