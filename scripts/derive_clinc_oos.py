"""Derive ``kefu/nlp/data/oos_en.txt`` (English out-of-scope training examples) from CLINC150.

CLINC150 (Larson et al., 2019, github.com/clinc/oos-eval) is CC-BY-3.0; see NOTICE. We take its
``oos_train`` split plus a few training sentences of in-scope CLINC intents that have nothing to do with
shopping (weather, travel, cooking, small talk...). ``oos_test`` and ``test`` stay untouched for
``bench/nlu.py``.

Usage: .venv/bin/python scripts/derive_clinc_oos.py [../shared/data/clinc150/data_full.json]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

# CLINC intents outside e-commerce customer service (banking, cards, orders, greetings are left out
# because our own intents cover or resemble them).
UNRELATED = (
    "alarm", "book_flight", "book_hotel", "calculator", "calendar", "calories", "car_rental", "carry_on",
    "change_accent", "change_ai_name", "change_speed", "change_volume", "cook_time", "current_location",
    "definition", "directions", "distance", "do_you_have_pets", "flight_status", "flip_coin", "fun_fact",
    "gas", "gas_type", "how_old_are_you", "ingredient_substitution", "international_visa", "jump_start",
    "meal_suggestion", "meaning_of_life", "measurement_conversion", "meeting_schedule", "mpg", "next_holiday",
    "next_song", "nutrition_info", "oil_change_how", "play_music", "plug_type", "pto_request", "recipe",
    "restaurant_reservation", "restaurant_suggestion", "roll_dice", "schedule_meeting", "smart_home",
    "spelling", "tell_joke", "time", "timer", "timezone", "tire_pressure", "traffic", "translate",
    "travel_suggestion", "uber", "vaccines", "weather", "what_are_your_hobbies", "what_is_your_name",
    "what_song", "where_are_you_from", "who_made_you",
)
PER_INTENT = 4


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/clinc150/data_full.json")
    data = json.loads(src.read_text("utf-8"))
    lines = [text for text, _ in data["oos_train"]] + [text for text, _ in data["oos_val"]]
    taken: dict[str, int] = defaultdict(int)
    for text, intent in data["train"]:
        if intent in UNRELATED and taken[intent] < PER_INTENT:
            taken[intent] += 1
            lines.append(text)
    out = Path(__file__).resolve().parent.parent / "kefu" / "nlp" / "data" / "oos_en.txt"
    out.write_text("\n".join(dict.fromkeys(line.strip() for line in lines if line.strip())) + "\n", "utf-8")
    print(f"wrote {out} ({len(lines)} lines)")


if __name__ == "__main__":
    main()
