"""Knowledge-base retrieval benchmark: quality on the demo shop's held-out questions, latency on 20,000 entries.

    .venv/bin/python bench/kb.py [--runs 3] [--queries 2000] [--cli]

Quality: recall@1, recall@5 and MRR of paraphrased questions that are not in the KB against ``demo_kb.jsonl``,
with and without the language filter the bot uses. Two sets: ``demo_heldout.jsonl`` (152 deliberately
colloquial questions; the synonym lists and weights were tuned while looking at its misses, so it is a
development set) and ``demo_test.jsonl`` (76 questions written afterwards and never tuned on).
Latency: p50/p99 of single queries on a generated 20,000-entry KB (the demo entries plus 19,924 synthetic
product FAQs in both languages), median of ``--runs`` runs. ``--cli`` also times the evaluation contract,
``kefu kb search`` with 10,000 queries over that KB, end to end (process start, load, index, answer).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kefu.knowledge.io import load_jsonl_index  # noqa: E402

DATA = ROOT / "kefu" / "knowledge" / "data"

ZH_PRODUCTS = ["蓝牙耳机", "保温杯", "羽绒服", "运动鞋", "电饭煲", "机械键盘", "面霜", "行李箱", "台灯", "瑜伽垫",
               "空气炸锅", "双肩包", "牛仔裤", "智能手表", "电动牙刷", "咖啡机", "床垫", "儿童玩具", "猫粮", "茶叶"]
EN_PRODUCTS = ["wireless earbuds", "thermos bottle", "down jacket", "running shoes", "rice cooker", "mechanical keyboard",
               "face cream", "suitcase", "desk lamp", "yoga mat", "air fryer", "backpack", "jeans", "smart watch",
               "electric toothbrush", "coffee machine", "mattress", "kids toy", "cat food", "green tea"]
ZH_ASPECTS = [("{p}的尺寸是多少", "{p}的详细尺寸见商品详情页规格表，型号 {n}。"),
              ("{p}怎么清洗", "{p}（型号 {n}）请用温水和中性清洁剂清洗，勿用钢丝球。"),
              ("{p}有几种颜色", "{p}目前有黑、白、灰三色，型号 {n}。"),
              ("{p}适合送礼吗", "{p}提供礼盒包装，型号 {n}，下单时备注即可。"),
              ("{p}的材质是什么", "{p}采用环保材质，型号 {n}，通过质检认证。")]
EN_ASPECTS = [("What size is the {p}?", "The {p} (model {n}) dimensions are listed in the spec table."),
              ("How do I clean the {p}?", "Clean the {p} (model {n}) with warm water and mild soap."),
              ("What colours does the {p} come in?", "The {p} (model {n}) comes in black, white and grey."),
              ("Is the {p} a good gift?", "The {p} (model {n}) can be gift wrapped; add a note at checkout."),
              ("What is the {p} made of?", "The {p} (model {n}) is made of certified eco-friendly materials.")]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def quality(language_filter: bool, held_file: str) -> dict[str, float]:
    index, _ = load_jsonl_index(DATA / "demo_kb.jsonl")
    held = read_jsonl(DATA / held_file)
    known = {" ".join(q.lower().split()) for e in read_jsonl(DATA / "demo_kb.jsonl")
             for q in [e["question"], *e.get("questions", [])]}
    leaked = [h["query"] for h in held if " ".join(h["query"].lower().split()) in known]
    assert not leaked, f"held-out questions that are in the KB: {leaked}"
    r1 = r5 = rr = 0.0
    for item in held:
        ids = [h.id for h in index.search(item["query"], top=5,
                                          language=item["language"] if language_filter else None)]
        r1 += bool(ids) and ids[0] == item["id"]
        if item["id"] in ids:
            r5 += 1
            rr += 1 / (ids.index(item["id"]) + 1)
    n = len(held)
    return {"queries": n, "entries": len(index), "recall@1": r1 / n, "recall@5": r5 / n, "mrr": rr / n}


OFF_TOPIC = ["今天天气怎么样", "你们老板是谁", "帮我写一首诗", "你是机器人吗", "what's the meaning of life",
             "I want to buy a car", "tell me a joke", "can you recommend a good movie"]


def decisions(held_file: str) -> dict[str, int]:
    """What the bot would do with each held-out question (language known), and with off-topic chatter."""
    from kefu.knowledge.policies import CHOICES, decide

    index, _ = load_jsonl_index(DATA / "demo_kb.jsonl")
    counts = {"answer_right": 0, "answer_wrong": 0, "choices_with_right": 0, "choices_without": 0, "handoff": 0}
    for item in read_jsonl(DATA / held_file):
        hits = index.search(item["query"], top=CHOICES, language=item["language"])
        decision = decide([h.confidence for h in hits])
        if decision == "answer":
            counts["answer_right" if hits[0].id == item["id"] else "answer_wrong"] += 1
        elif decision == "choices":
            counts["choices_with_right" if item["id"] in [h.id for h in hits] else "choices_without"] += 1
        else:
            counts["handoff"] += 1
    counts["off_topic_handed_off"] = sum(decide([h.confidence for h in index.search(q, top=CHOICES)]) == "handoff"
                                         for q in OFF_TOPIC)
    return counts


def generate_kb(path: Path, size: int = 20_000, seed: int = 7) -> list[str]:
    """Write a KB of ``size`` entries (the demo ones first) and return realistic queries for it."""
    rng = random.Random(seed)
    demo = read_jsonl(DATA / "demo_kb.jsonl")
    rows = list(demo)
    queries = [h["query"] for h in read_jsonl(DATA / "demo_heldout.jsonl")]
    n = 0
    while len(rows) < size:
        zh = n % 2 == 0
        products, aspects = (ZH_PRODUCTS, ZH_ASPECTS) if zh else (EN_PRODUCTS, EN_ASPECTS)
        product = f"{rng.choice(products)} {rng.choice('ABCDEFGHJK')}{rng.randint(100, 999)}"
        question, answer = rng.choice(aspects)
        model = f"M{n:05d}"
        aspect = aspects.index((question, answer))
        rows.append({"id": f"gen-{n}", "language": "zh" if zh else "en", "category": f"aspect-{aspect}",
                     "product_ids": [f"sku-{n % PRODUCTS}"],
                     "question": question.format(p=product), "answer": answer.format(p=product, n=model),
                     "questions": [question.format(p=product).replace("?", "").replace("吗", "")]})
        if n % 4 == 0:
            queries.append(question.format(p=product.split(" ")[0]))
        n += 1
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return queries


PRODUCTS = 2_000  # distinct catalogue products the generated entries are linked to


def latency(path: Path, queries: list[str], count: int,
            filtered: bool = False) -> tuple[float, float, float, float, float]:
    """Wall-clock p50/p99 (ms), CPU-time p50/p99 (ms) per query, and the CPU seconds to load and index.

    ``filtered``: every query also filters by language, channel and a linked product (as an agent's search
    from a product page does), each query a different product."""
    started = time.process_time()
    index, _ = load_jsonl_index(path)
    build = time.process_time() - started
    sample = [queries[i % len(queries)] for i in range(count)]
    for query in sample[:50]:  # warm-up: jieba caches, numpy dispatch
        index.search(query)
    wall, cpu = [], []
    for number, query in enumerate(sample):
        filters = {"language": ("zh", "en")[number % 2], "channel": "webchat",
                   "product": f"sku-{(number * 7) % PRODUCTS}"} if filtered else {}
        t0, c0 = time.perf_counter(), time.process_time()
        index.search(query, top=5, **filters)
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - t0) * 1000)
    wall.sort()
    cpu.sort()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(len(values) * q))]

    return pct(wall, 0.5), pct(wall, 0.99), pct(cpu, 0.5), pct(cpu, 0.99), build


def cli_run(path: Path, queries: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one ``kefu kb search`` process."""
    stdin = "".join(queries[i % len(queries)] + "\n" for i in range(10_000))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).with_name("kefu")), "kb", "search", "--kb", str(path)],
                            input=stdin.encode(), capture_output=True, check=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.stdout.count(b"\n") == 10_000
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def _import_once(url: str, content: str) -> float:
    import uuid

    from kefu.core.settings import Settings
    from kefu.knowledge import actions as knowledge_actions
    from kefu.knowledge.io import parse
    from kefu.knowledge.schemas import ImportRowError
    from kefu.runtime import build_runtime
    from kefu.tenants import actions as tenant_actions
    from kefu.tenants.schemas import TenantCreate

    rt = build_runtime(Settings(database_url=url, environment="development", log_json=False))
    try:
        uow = rt.unit_of_work()
        slug = f"bench-{uuid.uuid4().hex[:8]}"
        tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug=slug, name=slug))
        await uow.commit()
        t0 = time.perf_counter()
        drafts, errors = parse(content, "jsonl")
        await knowledge_actions.do_import_entries(uow, tenant_id=tenant.id, drafts=drafts, publish=True,
                                                  actor_id=None, errors=[ImportRowError(**e.as_dict())
                                                                         for e in errors])
        await uow.commit()
        elapsed = time.perf_counter() - t0
        await uow.session.close()
        return elapsed
    finally:
        await rt.engine.dispose()


def import_speed(runs: int) -> float:
    """Seconds to parse and import (published) 1,000 JSONL entries into a fresh SQLite database."""
    import asyncio

    from kefu.core.migrate import upgrade

    content = "".join(json.dumps({"id": f"bulk-{i}", "language": "zh" if i % 2 else "en",
                                  "question": f"Question {i} about product {i % 97}",
                                  "questions": [f"Paraphrase {i}"], "answer": f"Answer number {i}. " * 5}) + "\n"
                      for i in range(1000))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        upgrade(url)
        for _ in range(runs):
            times.append(asyncio.run(_import_once(url, content)))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--cli", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  "
          f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for held_file, flt in (("demo_heldout.jsonl", True), ("demo_heldout.jsonl", False),
                           ("demo_test.jsonl", True), ("demo_test.jsonl", False)):
        q = quality(flt, held_file)
        print(f"{held_file} ({'language filter' if flt else 'no filter'}): {q['queries']} questions over "
              f"{q['entries']} entries: recall@1 {q['recall@1']:.3f}  recall@5 {q['recall@5']:.3f}  "
              f"MRR {q['mrr']:.3f}")
    for held_file in ("demo_heldout.jsonl", "demo_test.jsonl"):
        print(f"bot decisions on {held_file} (off-topic: {len(OFF_TOPIC)} questions): {decisions(held_file)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kb20k.jsonl"
        queries = generate_kb(path)
        runs = [latency(path, queries, args.queries) for _ in range(args.runs)]
        med = [statistics.median(r[i] for r in runs) for i in range(5)]
        print(f"latency on 20,000 entries ({args.queries} queries, median of {args.runs} runs): "
              f"wall p50 {med[0]:.2f} ms  p99 {med[1]:.2f} ms; CPU p50 {med[2]:.2f} ms  p99 {med[3]:.2f} ms; "
              f"load + index build {med[4]:.1f} CPU s")
        runs = [latency(path, queries, args.queries, filtered=True) for _ in range(args.runs)]
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        print(f"same, filtered by language + channel + linked product ({PRODUCTS} products): "
              f"wall p50 {med[0]:.2f} ms  p99 {med[1]:.2f} ms; CPU p50 {med[2]:.2f} ms  p99 {med[3]:.2f} ms")
        if args.cli:
            times = [cli_run(path, queries) for _ in range(args.runs)]
            print(f"kefu kb search, 20,000 entries + 10,000 queries end to end (median of {args.runs} runs): "
                  f"{statistics.median(t[0] for t in times):.1f} s wall, "
                  f"{statistics.median(t[1] for t in times):.1f} s CPU")
    print(f"bulk import of 1,000 JSONL entries (parse + insert + publish, SQLite, median of {args.runs} runs): "
          f"{import_speed(args.runs):.2f} s")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
