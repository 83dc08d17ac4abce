"""The simulated BackQuant v2 API: demo, tests and offline development, with no key needed.

Levels come from a synthetic option chain with the real GEX math (see `chain.py`), so they
stay consistent as spot random-walks. `Simulator` holds the market and the fault knobs;
`SimServer` serves it over HTTP with BackQuant's envelopes, auth and rate limits.
"""
