"""Real servers on loopback for tests and benchmarks: an OpenAI-compatible LLM and a throwaway PostgreSQL."""
