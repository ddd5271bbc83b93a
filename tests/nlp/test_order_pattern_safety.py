"""Tenant order-number patterns can neither stall a node nor be stored when they cannot run safely.

Tenant patterns run on RE2 (linear time); the built-in patterns stay on ``re`` and must not backtrack
catastrophically on what a customer can type. The slow cases run in a subprocess with a generous timeout:
on a backtracking engine they would take far longer than any machine's lifetime, so a pass cannot be luck.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx

from kefu.nlp.entities import OrderPattern, extract_entities
from kefu.nlp.policies import order_pattern_problem
from kefu.nlp.service import analyse
from tests.factories import TenantFixture

# Accepted by the nested-quantifier check, yet exponential on a backtracking engine.
REDOS_PATTERNS = [r"((?:\d+))+X", r"(\d|\d\d)+X"]


def _run_isolated(code: str, timeout: float = 30.0) -> str:
    """Run ``code`` in a fresh interpreter; a backtracking blow-up shows as a timeout, not a hung test run."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_redos_patterns_complete_on_ten_thousand_digits() -> None:
    for regex in REDOS_PATTERNS:
        assert order_pattern_problem(regex) is None  # accepted: the engine, not the check, keeps them safe
    out = _run_isolated(f"""
        from kefu.nlp.entities import OrderPattern, compile_tenant_pattern, extract_entities
        digits = "1" * 10_000 + "!"
        for regex in {REDOS_PATTERNS!r}:
            assert compile_tenant_pattern(regex).search(digits) is None
            found = extract_entities("订单 " + digits, order_patterns=[OrderPattern("t", regex, "shop")])
            assert not [e for e in found if e.attributes.get("pattern") == "t"]
        print("done")
    """)
    assert out.strip() == "done"


def test_customer_text_cannot_stall_the_builtin_patterns() -> None:
    # "order" + spaces took minutes (three adjacent \\s* in the contextual pattern); a long run of digits or
    # Chinese numerals made the amount and relative-date searches quadratic.
    out = _run_isolated("""
        from kefu.nlp.service import analyse
        for text in ["order" + " " * 1990 + "x1", "order no" + "\\t" * 1990 + "1", "订单号" + " " * 1990 + "是1",
                     "1" * 2000, "一" * 1999 + "天", "1," * 1000]:
            analyse(text)
        print(analyse("order number is  KF-20261122").entities[0].normalized)
    """)
    assert out.strip() == "KF20261122"


def test_tenant_patterns_see_a_bounded_prefix_and_their_group() -> None:
    mine = OrderPattern("mine", r"order (MS\d{6})", "own_shop", group=1)
    far = "x" * 2500 + " order MS123456"
    assert [e.value for e in extract_entities("hi order MS123456", order_patterns=[mine])] == ["MS123456"]
    assert extract_entities(far, order_patterns=[mine]) == []
    # A pattern RE2 cannot run (say, stored before RE2 was used) finds nothing instead of failing the message.
    legacy = OrderPattern("legacy", r"(?<!\d)MS\d{6}", "own_shop")
    assert analyse("where is MS123456", order_patterns=[legacy]).entities == ()


def test_problems_are_codes() -> None:
    cases = {"([": "invalid_regex", r"\d{2000}": "invalid_regex", r"(\d+)+": "nested_quantifier",
             ".*": "matches_empty", "[a-z]+": "matches_empty", r"(a)(b)\d": "too_many_groups",
             r"(?<!\d)\d{8}": "unsupported_feature", r"(\d)\1\d": "unsupported_feature"}
    assert {regex: getattr(order_pattern_problem(regex), "code", None) for regex in cases} == cases
    assert order_pattern_problem(r"(\d)\1\d").params == {"feature": "backreference"}  # type: ignore[union-attr]
    assert order_pattern_problem(r"MS-\d{8}") is None


async def test_refusals_carry_a_code_and_a_message_in_the_callers_language(
        http: httpx.AsyncClient, tenant: TenantFixture) -> None:
    zh = {**tenant.admin.headers, "Accept-Language": "zh"}
    en = {**tenant.admin.headers, "Accept-Language": "en"}
    lookbehind = {"name": "lb", "regex": r"(?<![A-Z])MS\d{8}", "marketplace": "own"}
    r = await http.post("/api/v1/nlu/order-patterns", headers=zh, json=lookbehind)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "nlu_invalid_pattern"
    assert error["details"] == {"problem": "unsupported_feature", "feature": "lookaround"}
    assert error["message"].startswith("订单号规则无法使用：") and "后顾断言" in error["message"]
    assert not any("a" <= c <= "z" for c in error["message"].replace("(?", ""))  # no English left in zh

    r = await http.post("/api/v1/nlu/order-patterns", headers=en, json=lookbehind)
    assert "lookahead or lookbehind" in r.json()["error"]["message"]

    for regex, problem, zh_words in [(r"(\d+)+", "nested_quantifier", "重复的分组"),
                                     (".*", "matches_empty", "空文本"),
                                     (r"(a)(b)\d", "too_many_groups", "捕获分组"),
                                     ("([", "invalid_regex", "不是合法的正则表达式")]:
        r = await http.post("/api/v1/nlu/order-patterns", headers=zh,
                            json={"name": "bad", "regex": regex, "marketplace": "x"})
        assert r.status_code == 422, regex
        assert r.json()["error"]["details"]["problem"] == problem
        assert zh_words in r.json()["error"]["message"], r.json()
    en_nested = await http.post("/api/v1/nlu/order-patterns", headers=en,
                                json={"name": "bad", "regex": r"(\d+)+", "marketplace": "x"})
    assert r"\d{8,12}" in en_nested.json()["error"]["message"]
    # Nothing refused was stored.
    assert (await http.get("/api/v1/nlu/order-patterns", headers=en)).json()["data"] == []


async def test_a_tenant_pattern_with_a_group_yields_the_number(http: httpx.AsyncClient,
                                                               tenant: TenantFixture) -> None:
    admin = tenant.admin.headers
    created = await http.post("/api/v1/nlu/order-patterns", headers=admin,
                              json={"name": "ref", "regex": r"ref[ :]*(\d{7})", "marketplace": "own_shop"})
    assert created.status_code == 201, created.text
    assert (await http.post("/api/v1/nlu/model/retrain", headers=admin)).status_code == 200
    found = (await http.post("/api/v1/nlu/analyse", headers=admin, json={"text": "REF: 7654321 is late"})).json()
    assert [(e["value"], e["attributes"]["pattern"]) for e in found["entities"]] == [("7654321", "ref")]
