#!/usr/bin/env python3
"""Raw SQLite baselines for tools/bench rows 1-3 (issue 11), with the event log's pragmas (WAL, synchronous=FULL).

    bench_sqlite.py single  DB COUNT          COUNT single-row commits (BEGIN IMMEDIATE; INSERT; COMMIT)
    bench_sqlite.py batched DB COUNT BATCH    COUNT rows in transactions of BATCH rows
    bench_sqlite.py scan    DB                SELECT every column of every row of `events`, in position order

Rows have the event log's columns and a 300-byte payload. Prints one JSON object: {"count": N, "seconds": S,
"per_second": R}. `single` and `batched` create DB (it must not exist); `scan` reads an existing event log.
"""
import json
import os
import sqlite3
import sys
import time

SCHEMA = """
CREATE TABLE events (
    position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
    schema INTEGER NOT NULL, payload BLOB NOT NULL, actor TEXT NOT NULL, correlation_id TEXT, causation_id TEXT,
    recorded_at INTEGER NOT NULL, hash BLOB NOT NULL, UNIQUE (stream, version));
CREATE INDEX events_type ON events(type, position);
"""
INSERT = ("INSERT INTO events (position, stream, version, type, schema, payload, actor, correlation_id, causation_id,"
          " recorded_at, hash) VALUES (?, ?, ?, ?, 1, ?, 'backend', NULL, NULL, ?, ?)")


def open_db(path, create):
    if create and os.path.exists(path):
        sys.exit(f"bench_sqlite.py: {path} exists; give a fresh path")
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    if create:
        connection.executescript(SCHEMA)
    return connection


def row(i):
    return (i, f"task/tsk-{i % 5000:012d}", i, "task.started", b"x" * 300, 1_800_000_000_000 + i, os.urandom(32))


def report(count, seconds):
    print(json.dumps({"count": count, "seconds": seconds, "per_second": count / seconds if seconds > 0 else None}))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    mode, path = argv[1], argv[2]
    if mode == "single":
        count = int(argv[3])
        db = open_db(path, True)
        start = time.perf_counter()
        for i in range(1, count + 1):
            db.execute("BEGIN IMMEDIATE")
            db.execute(INSERT, row(i))
            db.execute("COMMIT")
        report(count, time.perf_counter() - start)
    elif mode == "batched":
        count, batch = int(argv[3]), int(argv[4])
        db = open_db(path, True)
        rows = [row(i) for i in range(1, count + 1)]
        start = time.perf_counter()
        for first in range(0, count, batch):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(INSERT, rows[first:first + batch])
            db.execute("COMMIT")
        report(count, time.perf_counter() - start)
    elif mode == "scan":
        db = open_db(path, False)
        start = time.perf_counter()
        count = 0
        for _ in db.execute("SELECT * FROM events ORDER BY position"):
            count += 1
        report(count, time.perf_counter() - start)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
