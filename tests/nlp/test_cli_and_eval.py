"""The evaluation contract: ``kefu nlu predict`` JSON lines and ``kefu nlu eval`` reports; held-out figures."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from kefu.cli import app as cli_app
from kefu.nlp.evaluation import evaluate, read_labelled_csv
from kefu.nlp.service import analyse_batch

KEFU = str(Path(sys.executable).with_name("kefu"))
EVAL = Path(__file__).resolve().parents[2] / "kefu" / "nlp" / "data" / "eval"


def test_predict_writes_one_contract_object_per_line() -> None:
    lines = ["我的快递到哪了 订单2026112212345678", "", "third time I'm asking!!! where is my refund", "😀",
             "mixed 中文 and English", "x" * 3000]
    stdin = ("\n".join(lines) + "\n").encode() + b"\xff\xfe invalid utf-8\r\n"
    done = subprocess.run([KEFU, "nlu", "predict"], input=stdin, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    out = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(out) == len(lines) + 1
    for obj in out:
        assert {"text", "language", "intent", "confidence", "entities", "emotion", "sentiment"} <= obj.keys()
        assert {"label", "score"} <= obj["emotion"].keys() and {"polarity", "score"} <= obj["sentiment"].keys()
        for e in obj["entities"]:
            assert obj["text"][e["start"]:e["end"]] == e["value"]
    assert out[0]["intent"] == "track_order" and out[0]["entities"][0]["type"] == "order_number"
    assert out[2]["emotion"]["label"] == "anger"
    assert out[5]["truncated"] is True and len(out[5]["text"]) == 2000
    assert out[6]["intent"] == "out_of_scope"


def test_eval_prints_the_documented_figures(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "intent"])
        w.writerows([["我的快递到哪了", "track_order"], ["转人工", "contact_human_agent"],
                     ["今天天气怎么样", "out_of_scope"], ["where is my refund", "get_refund"]])
    runner = CliRunner()
    done = runner.invoke(cli_app, ["nlu", "eval", "--data", str(data)])
    assert done.exit_code == 0, done.output
    for needle in ("accuracy        0.7500", "macro-F1", "out-of-scope    precision 1.0000  recall 1.0000",
                   "track_order", "get_refund -> track_refund: 1"):
        assert needle in done.stdout, done.stdout
    as_json = runner.invoke(cli_app, ["nlu", "eval", "--data", str(data), "--json"])
    assert json.loads(as_json.stdout)["accuracy"] == 0.75
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    refused = runner.invoke(cli_app, ["nlu", "eval", "--data", str(bad)])
    assert refused.exit_code == 2 and "text and intent" in refused.output


def test_held_out_messages_meet_the_accuracy_target() -> None:
    texts, gold = read_labelled_csv(EVAL / "heldout.csv")
    report = evaluate(gold, [u.intent for u in analyse_batch(texts)])
    assert report.n >= 450 and len(set(gold)) == 39
    assert report.accuracy >= 0.95, report.lines()


def test_anger_detection_on_service_messages() -> None:
    for name in ("anger_service.csv", "anger_service_holdout.csv"):
        rows = list(csv.DictReader((EVAL / name).open(encoding="utf-8")))
        results = analyse_batch([r["text"] for r in rows])
        gold = [r["label"] == "anger" for r in rows]
        pred = [u.emotion.label == "anger" for u in results]
        tp = sum(g and p for g, p in zip(gold, pred, strict=True))
        precision, recall = tp / max(1, sum(pred)), tp / sum(gold)
        assert 2 * precision * recall / (precision + recall) >= 0.85, (name, precision, recall)


def test_training_data_covers_every_intent_in_both_languages() -> None:
    import yaml

    from kefu.nlp.intents import DEFAULT_INTENTS, _data_dir

    for intent in DEFAULT_INTENTS:
        data = yaml.safe_load((_data_dir() / "intents" / f"{intent}.yaml").read_text("utf-8"))
        assert data["intent"] == intent
        assert len(data["zh"]) >= 40 and len(data["en"]) >= 40, intent
    held_out = {t for t, _ in zip(*read_labelled_csv(EVAL / "heldout.csv"), strict=True)}
    trained = {str(t) for intent in DEFAULT_INTENTS for lang in ("zh", "en") for t in yaml.safe_load(
        (_data_dir() / "intents" / f"{intent}.yaml").read_text("utf-8"))[lang]}
    assert not held_out & trained  # the held-out set is really held out
