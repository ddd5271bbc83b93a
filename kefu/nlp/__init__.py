"""Language understanding: language detection, tokenisation, intents, entities and emotion in Chinese and English.

Public API (import from ``kefu.nlp.service``; everything is keyword-only after the text):

    analyse(text, *, tenant_id=None, now=None, products=None, order_patterns=None) -> Understanding
    analyse_batch(texts, *, tenant_id=None, now=None, products=None, order_patterns=None) -> list[Understanding]
    await analyse_for_tenant(session, *, tenant_id, text, now=None, products=None) -> Understanding
        (same, but first makes sure the tenant's custom model and order patterns are loaded in this
        process; use this from request handlers and the bot worker)

``Understanding`` (``kefu.nlp.understanding``): text, language ("zh" | "en" | "mixed" | "und"), intent,
confidence, intents (ranked ``IntentScore(intent, confidence)``), entities (``Entity(type, value, start,
end, normalized, attributes)`` with type order_number | phone | email | tracking_number | amount | date |
product), emotion (``Emotion(label, score, scores, cues)`` with labels anger, anxiety, sadness, joy,
surprise, neutral), sentiment (``Sentiment(polarity, score)``), truncated (text cut at MAX_CHARS),
``to_dict()`` for the JSON contract of ``kefu nlu predict``.

The intent is one of ``DEFAULT_INTENTS`` (``kefu.nlp.intents``) or a tenant's custom intent;
``out_of_scope`` when nothing fits. Analysis is CPU work (about a millisecond): call it from a thread or in
batches when on the event loop's hot path.
"""
