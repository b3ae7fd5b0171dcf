"""The Dagster layer: thin wiring of the plain pipeline stages into assets, jobs, sensors."""
