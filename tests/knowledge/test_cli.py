"""``kefu kb search`` (the evaluation contract): JSONL KB in, one query per stdin line, one JSON line out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_kb_search_answers_each_query_line(tmp_path: Path) -> None:
    kb = tmp_path / "kb.jsonl"
    kb.write_text("\n".join([
        json.dumps({"id": "r", "question": "怎么退货", "questions": ["退货流程"], "answer": "在订单页申请", "language": "zh"}),
        json.dumps({"id": "t", "question": "Where is my parcel?", "answer": "See tracking", "language": "en"}),
        "{broken line",
    ]), encoding="utf-8")
    kefu = Path(sys.executable).with_name("kefu")
    result = subprocess.run([str(kefu), "kb", "search", "--kb", str(kb), "--top", "1"], capture_output=True,
                            input="我想退换\nwher is my pakage\n\n".encode(), timeout=120, check=True)
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [line["query"] for line in lines] == ["我想退换", "wher is my pakage", ""]
    assert lines[0]["results"][0]["id"] == "r" and lines[1]["results"][0]["id"] == "t"
    assert len(lines[0]["results"]) == 1 and isinstance(lines[0]["results"][0]["score"], float)
    assert lines[2]["results"] == []
    assert b":3: malformed_row" in result.stderr
