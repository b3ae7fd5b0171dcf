"""Live ingest: an OTLP/HTTP endpoint (`topics serve`) whose accepted spans are spooled to disk, and the
spool's consumer (stage.ingest_spool, run by the otlp_spool sensor) that ingests them like files.

    protocol.py  OTLP/HTTP requests and responses on the opentelemetry-proto messages
    spool.py     segments of flushed frames, group commit, crash recovery, locks
    app.py       the Starlette app and its uvicorn server
    stage.py     ingest_spool: ready traces into the store through ingest_paths
    emit.py      replays span-format trace records as OpenTelemetry spans (tests, benchmark)

No Dagster here; the sensor lives in defs/spool.py.
"""
