"""Language understanding: language detection, tokenisation, intents, entities and emotion in Chinese and English."""
