"""Insight: what the topic labels say over time (trends and the alerts sent about them)."""
