"""Slow work the code and docs cite: NLU retraining, gap clustering, and loading the knowledge index.

Usage: .venv/bin/python bench/slow_work.py [--runs 3] [--examples 20000] [--questions 5000] [--entries 15000]
       [--only nlu gaps load]

These figures size the retrain lease (``nlp.service.TRAINING_LEASE``) and explain why slow work runs with no
transaction open (on SQLite a transaction holds the one write lock) and why the index loads plain rows. Each
calls the product's own function: ``nlp.actions.train_claimed`` (a retrain's training step), ``knowledge.service
.policies_cluster`` (gap mining) and ``knowledge.service._load_published`` (the index's load) against the
ORM-object load it replaced, on a freshly migrated SQLite file. Inputs are synthetic and seeded, zh and en.
Prints the median of ``--runs`` runs (and each run), wall and CPU time (every thread of the process), with
the core count and load average: on a shared machine the wall figure is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from kefu.core.clock import utcnow  # noqa: E402
from kefu.core.ids import new_id  # noqa: E402
from kefu.core.migrate import upgrade  # noqa: E402
from kefu.core.settings import Settings  # noqa: E402
from kefu.knowledge import service as knowledge_service  # noqa: E402
from kefu.knowledge.models import KbEntry, KbEntryVersion  # noqa: E402
from kefu.nlp import actions as nlp_actions  # noqa: E402
from kefu.nlp import language  # noqa: E402
from kefu.nlp import service as nlp_service  # noqa: E402
from kefu.nlp.intents import OUT_OF_SCOPE, default_examples, load_or_train_default  # noqa: E402
from kefu.nlp.pipeline import registry  # noqa: E402
from kefu.nlp.policies import MAX_EXAMPLES_PER_TENANT, example_language, normalise_example  # noqa: E402
from kefu.runtime import build_runtime  # noqa: E402
from kefu.tenants import actions as tenant_actions  # noqa: E402
from kefu.tenants.schemas import TenantCreate  # noqa: E402

AFFIXES = {"zh": (["", "你好，", "您好，", "请问", "亲，", "客服，", "麻烦问一下，", "在吗？"],
                  ["", "？", "，谢谢", "，急", "，在线等", "！！", "，麻烦尽快", "呢"]),
           "en": (["", "hi, ", "hello ", "excuse me, ", "quick question: ", "hey, ", "sorry to bother you, ",
                   "good morning, "], ["", " please", " thanks", ", asap", "??", " - any update", " thank you",
                                       " :("])}
PRODUCTS = {"zh": ["蓝牙耳机", "空气炸锅", "羽绒服", "扫地机器人", "保温杯", "电动牙刷", "行李箱", "投影仪",
                   "婴儿推车", "智能手表", "咖啡机", "瑜伽垫"],
            "en": ["earbuds", "air fryer", "down jacket", "robot vacuum", "thermos", "electric toothbrush",
                   "suitcase", "projector", "baby stroller", "smart watch", "coffee machine", "yoga mat"]}
GAP_TEMPLATES = {"zh": ["{p}能和{q}一起用吗", "{p}坏了可以换成{q}吗", "{p}有没有{c}的款式", "买{p}送不送{q}",
                        "{p}和{q}哪个更适合{c}", "{p}在{c}能用吗", "{p}的{q}配件在哪买", "{p}可以刻字吗"],
                 "en": ["can I use the {p} with the {q}", "can I swap a broken {p} for a {q}",
                        "is there a {c} version of the {p}", "does the {p} come with a {q}",
                        "which is better for {c}, the {p} or the {q}", "does the {p} work in {c}",
                        "where do I buy {q} parts for the {p}", "can you engrave the {p}"]}
GAP_DETAILS = {"zh": ["户外", "日本", "儿童", "办公室", "冬天", "露营", "宿舍", "海边"],
               "en": ["outdoor", "Japan", "kids", "the office", "winter", "camping", "a dorm", "the beach"]}


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of the whole process (worker and library threads too), and the result."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - t0, time.process_time() - c0, result


def report(what: str, runs: list[tuple[float, float]], extra: str = "") -> None:
    wall, cpu = [r[0] for r in runs], [r[1] for r in runs]
    print(f"{what}: median of {len(runs)} runs {statistics.median(wall):.2f} s wall, "
          f"{statistics.median(cpu):.2f} s CPU (runs, wall: {' '.join(f'{w:.2f}' for w in wall)}){extra}")


# ------------------------------------------------------------------------------------------- NLU retrain


def tenant_examples(count: int, seed: int = 3) -> list[tuple[str, str]]:
    """``count`` distinct (text, intent) pairs over the default intents, half zh and half en: shipped
    examples reworded with a customer's openings and endings, as a tenant's own examples tend to be."""
    rng = random.Random(seed)
    seeds: dict[str, list[tuple[str, str]]] = {"zh": [], "en": []}
    for text, intent in default_examples():
        language = example_language(text)
        if intent != OUT_OF_SCOPE and language in seeds:
            seeds[language].append((text, intent))
    chosen: dict[tuple[str, str], None] = {}
    while len(chosen) < count:
        language = ("zh", "en")[len(chosen) % 2]
        text, intent = rng.choice(seeds[language])
        before, after = AFFIXES[language]
        reworded = normalise_example(f"{rng.choice(before)}{text.rstrip('?？。.')}{rng.choice(after)}")
        if reworded is not None:
            chosen.setdefault((reworded, intent), None)
    return list(chosen)


def nlu(runs: int, count: int) -> None:
    examples = tenant_examples(count)
    claim = nlp_actions.RetrainClaim(
        tenant_id="bench", model_id="bench", version=0, claimed_at=utcnow(), examples=examples, patterns=[],
        custom_intents=0, data_hash=nlp_service.training_data_hash(examples=examples, patterns=[]))
    registry.default()  # the default pipeline a retrain starts from: loaded (or trained) once per process
    shipped = len(default_examples())
    times = []
    for _ in range(runs):
        # Every run tokenises from scratch, as a first retrain does: the word cache would otherwise hold the
        # whole tenant set after the first run (about 1.4 s of jieba per run).
        language._jieba_words.cache_clear()  # noqa: SLF001
        wall, cpu, pipeline = timed(lambda: nlp_actions.train_claimed(claim))
        times.append((wall, cpu))
    probe = pipeline.analyse("我的快递到哪了").intent, pipeline.analyse("where is my parcel").intent
    report(f"NLU retrain (nlp.actions.train_claimed), {len(examples):,} tenant examples (half zh, half en, "
           f"{len({i for _, i in examples})} intents) + {shipped:,} shipped", times,
           f"; model answers {probe[0]} / {probe[1]}")
    times = [timed(lambda: load_or_train_default(use_cache=False))[:2] for _ in range(runs)]
    report(f"NLU shipped defaults only (intents.load_or_train_default(use_cache=False)), {shipped:,} examples",
           times)


# ----------------------------------------------------------------------------------------- gap clustering


def gap_questions(count: int, seed: int = 5) -> list[str]:
    """``count`` unanswered questions, alternately zh and en, many near-duplicates as real gaps have."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        language = ("zh", "en")[n % 2]
        p, q = rng.sample(PRODUCTS[language], 2)
        question = rng.choice(GAP_TEMPLATES[language]).format(p=p, q=q, c=rng.choice(GAP_DETAILS[language]))
        out.append(rng.choice(AFFIXES[language][0]) + question + rng.choice(AFFIXES[language][1]))
    return out


def gaps(runs: int, count: int) -> None:
    questions = gap_questions(count)
    knowledge_service.policies_cluster(questions[:50])  # imports sklearn outside the timing
    times = []
    for _ in range(runs):
        wall, cpu, clusters = timed(lambda: knowledge_service.policies_cluster(questions))
        times.append((wall, cpu))
    report(f"gap clustering (knowledge.service.policies_cluster), {count:,} questions (half zh, half en)", times,
           f"; {len(clusters):,} clusters")


# ----------------------------------------------------------------------------------- knowledge index load


async def load_orm(session: AsyncSession, tenant_id: str) -> list[Any]:
    """The load before plain rows: entries and their published versions as ORM objects, same query otherwise."""
    return list((await session.execute(
        select(KbEntry, KbEntryVersion)
        .join(KbEntryVersion, (KbEntryVersion.entry_id == KbEntry.id)
              & (KbEntryVersion.version == KbEntry.published_version))
        .where(KbEntry.tenant_id == tenant_id, KbEntry.status == "published")
        .order_by(KbEntry.id))).all())


async def publish_entries(runtime: Any, tenant_id: str, count: int, seed: int = 9) -> None:
    """``count`` published FAQ entries (half zh, half en) with one version each, inserted in bulk."""
    rng, now = random.Random(seed), utcnow()
    entries, versions = [], []
    for n in range(count):
        language = ("zh", "en")[n % 2]
        p, q = rng.sample(PRODUCTS[language], 2)
        question = rng.choice(GAP_TEMPLATES[language]).format(p=p, q=q, c=rng.choice(GAP_DETAILS[language]))
        answer = (f"<p>{question}：可以，详见商品页第 {n} 条说明。</p>" if language == "zh"
                  else f"<p>{question}: yes, see note {n} on the product page.</p>")
        content = {"title": "", "question": question, "paraphrases": [f"{question} #{n}"], "answer": answer,
                   "chunks": []}
        entry_id = new_id("kb")
        entries.append({"id": entry_id, "tenant_id": tenant_id, "kind": "faq", "status": "published",
                        "language": language, "category": "", "tags": [], "channels": [],
                        "product_ids": [f"sku-{n % 500}"], "version": 1, "published_version": 1,
                        "published_at": now, "created_at": now, "updated_at": now, **content})
        versions.append({"id": new_id("kbv"), "tenant_id": tenant_id, "entry_id": entry_id, "version": 1,
                         "created_at": now, **content})
    async with runtime.sessionmaker() as session:
        for start in range(0, count, 2_000):
            await session.execute(insert(KbEntry), entries[start:start + 2_000])
            await session.execute(insert(KbEntryVersion), versions[start:start + 2_000])
        await session.commit()


async def timed_load(runtime: Any, load: Callable[[AsyncSession, str], Awaitable[list[Any]]],
                     tenant_id: str) -> tuple[float, float, int]:
    async with runtime.sessionmaker() as session:  # a new session: an empty identity map, as in production
        t0, c0 = time.perf_counter(), time.process_time()
        rows = await load(session, tenant_id)
        return time.perf_counter() - t0, time.process_time() - c0, len(rows)


async def index_load(runs: int, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kefu-slow-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
        runtime = build_runtime(Settings(database_url=url, environment="development", log_json=False))
        try:
            uow = runtime.unit_of_work()
            tenant = await tenant_actions.do_create_tenant(uow, data=TenantCreate(slug="bench", name="bench"))
            await uow.commit()
            await uow.session.close()
            await publish_entries(runtime, tenant.id, count)
            ways = {"rows (knowledge.service._load_published)": knowledge_service._load_published,
                    "ORM objects (select(KbEntry, KbEntryVersion))": load_orm}
            for load in ways.values():  # warm the page cache and SQLAlchemy's compiled-statement cache
                await timed_load(runtime, load, tenant.id)
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
            for run in range(runs):
                for name in sorted(ways, reverse=run % 2 == 1):  # alternate which goes first
                    wall, cpu, loaded = await timed_load(runtime, ways[name], tenant.id)
                    assert loaded == count, (name, loaded)
                    times[name].append((wall, cpu))
        finally:
            await runtime.close()
    for name, runs_of in times.items():
        report(f"index load of {count:,} published entries from SQLite, {name}", runs_of)
    rows, orm = (statistics.median(w for w, _ in times[name]) for name in ways)
    print(f"index load: ORM objects take {orm / rows:.1f}x the wall time of rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=MAX_EXAMPLES_PER_TENANT, help="tenant NLU examples")
    parser.add_argument("--questions", type=int, default=5_000, help="gap questions (gaps() clusters at most 5,000)")
    parser.add_argument("--entries", type=int, default=15_000, help="published KB entries to load")
    parser.add_argument("--only", nargs="+", choices=["nlu", "gaps", "load"], default=["nlu", "gaps", "load"])
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  "
          f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if "nlu" in args.only:
        nlu(args.runs, args.examples)
    if "gaps" in args.only:
        gaps(args.runs, args.questions)
    if "load" in args.only:
        asyncio.run(index_load(args.runs, args.entries))
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
