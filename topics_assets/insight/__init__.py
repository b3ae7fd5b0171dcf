"""Insight: which topics fail, cost, grow or are new. Per-topic figures (stats), trends over them (trends,
pure functions of a daily counts frame), the stage that writes both to the store (stage), and the
delivery of the alerts they raise (alerts)."""
