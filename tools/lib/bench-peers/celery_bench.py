"""Celery's side of tools/bench row 6: N tasks that each run `true`, through Celery's SQS transport, one worker.

Usage (celery.sh runs it with .venv-celery's python):
    celery_bench.py N ENDPOINT
ENDPOINT is an SQS-compatible server on loopback, e.g. http://127.0.0.1:4566 (ministack). The key comes from
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else TOUCHSTONE_SQS_ACCESS_KEY_ID/TOUCHSTONE_SQS_SECRET_ACCESS_KEY (what
tools/lib/sqs-servers.sh exports); region us-east-1 unless TOUCHSTONE_SQS_REGION says otherwise.

Prints exactly one JSON line on stdout:
    {"peer": "celery", "tasks": N, "seconds": S, "tasks_per_s": R, "version": "5.7.0", ...}
or {"peer": "celery", "tasks": N, "error": "why"} when Celery cannot run here. Exits 0 either way; logs go to stderr.

How completions are counted without a result backend: the task writes one byte to a named pipe (FIFO) that this
process holds open for reading; a write of one byte to a pipe is atomic (POSIX, PIPE_BUF), so this process sees
exactly one byte per finished task and blocks in select() until they have all arrived.

The same module is the worker's app (`celery -A celery_bench worker`), configured from the environment that the
driver passes to it (CELERY_BENCH_*).
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

from celery import Celery

WORKER_READY_TIMEOUT_S = 120  # first start imports celery, creates the queue, and runs one warm-up task
RUN_TIMEOUT_S = 900


def make_app():
    """The Celery app, configured from CELERY_BENCH_* variables (set by the driver for itself and the worker)."""
    endpoint = urllib.parse.urlsplit(os.environ["CELERY_BENCH_ENDPOINT"])
    key = urllib.parse.quote(os.environ["CELERY_BENCH_KEY_ID"], safe="")
    secret = urllib.parse.quote(os.environ["CELERY_BENCH_SECRET"], safe="")
    app = Celery("celery_bench", broker=f"sqs://{key}:{secret}@{endpoint.hostname}:{endpoint.port}")
    app.conf.update(
        broker_transport_options={
            "region": os.environ["CELERY_BENCH_REGION"],
            "is_secure": endpoint.scheme == "https",  # kombu builds http://host:port from the broker URL
            # No client-side pause between polls; kombu's default long poll (10 s) stays, so an idle worker waits
            # in ReceiveMessage and a new message returns it at once.
            "polling_interval": 0,
            # The queue is created before the worker starts (as in production, where kombu's docs advise
            # predefined queues); kombu then never lists queues, which ministack's IAM policy would refuse.
            "predefined_queues": {os.environ["CELERY_BENCH_QUEUE"]: {"url": os.environ["CELERY_BENCH_QUEUE_URL"]}},
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=os.environ["CELERY_BENCH_QUEUE"],
        task_ignore_result=True,  # no result backend: completions are counted through the FIFO
        # Each ReceiveMessage may return up to 10 messages (SQS's maximum); 5 x 2 processes lets it ask for 10.
        worker_prefetch_multiplier=5,
        # Remote control and events need a fanout exchange, which Celery's SQS transport provides only through SNS.
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


if "CELERY_BENCH_ENDPOINT" in os.environ:
    app = make_app()

    @app.task(name="celery_bench.run_true")
    def run_true():
        """Runs `true` (as Touchstone's and Slurm's runs do), then reports completion with one byte on the FIFO."""
        subprocess.run(["true"], check=True)
        fd = os.open(os.environ["CELERY_BENCH_FIFO"], os.O_WRONLY)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)


def result(n, **fields):
    print(json.dumps({"peer": "celery", "tasks": n, **fields}), flush=True)


def log(message):
    print(f"bench-peers/celery: {message}", file=sys.stderr, flush=True)


def await_bytes(fd, count, deadline, worker):
    """Blocks until COUNT bytes were read from FD; False when the deadline passes or the worker exits first."""
    got = 0
    while got < count:
        left = deadline - time.monotonic()
        if left <= 0 or worker.poll() is not None:
            return False
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            got += len(os.read(fd, count - got))
    return True


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        print("usage: celery_bench.py N ENDPOINT (N >= 1 tasks)", file=sys.stderr)
        return 2
    n, endpoint = int(sys.argv[1]), sys.argv[2]
    from importlib.metadata import version
    versions = {"version": version("celery"), "kombu": version("kombu")}
    key = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("TOUCHSTONE_SQS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or os.environ.get("TOUCHSTONE_SQS_SECRET_ACCESS_KEY")
    if not key or not secret:
        result(n, error="no SQS key: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", **versions)
        return 0
    pool = os.environ.get("CELERY_POOL", "prefork")
    concurrency = int(os.environ.get("CELERY_CONCURRENCY", "2"))
    submitters = int(os.environ.get("SUBMITTERS", "4"))
    workdir = tempfile.mkdtemp(prefix="bench-celery-")
    fifo = os.path.join(workdir, "done.fifo")
    os.mkfifo(fifo)
    queue = f"bench-celery-{uuid.uuid4().hex[:8]}"
    region = os.environ.get("TOUCHSTONE_SQS_REGION", "us-east-1")
    import boto3
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
                       aws_secret_access_key=secret)
    try:
        queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    except Exception as e:  # the server refused or could not be reached: say why, no figure
        result(n, error=f"cannot create an SQS queue at {endpoint}: {type(e).__name__}: {e}", **versions)
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    os.environ.update(CELERY_BENCH_ENDPOINT=endpoint, CELERY_BENCH_KEY_ID=key, CELERY_BENCH_SECRET=secret,
                      CELERY_BENCH_REGION=region, CELERY_BENCH_QUEUE=queue, CELERY_BENCH_QUEUE_URL=queue_url,
                      CELERY_BENCH_FIFO=fifo)
    # O_RDWR: opening never blocks waiting for a writer, and the pipe never reports end-of-file between tasks.
    fifo_fd = os.open(fifo, os.O_RDWR)
    here = os.path.dirname(os.path.abspath(__file__))
    worker_log = os.path.join(workdir, "worker.log")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_bench", "worker", f"--pool={pool}",
         f"--concurrency={concurrency}", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-Q", queue, "-n", f"bench@{queue}"],
        cwd=workdir, env={**os.environ, "PYTHONPATH": here}, stdout=open(worker_log, "w"), stderr=subprocess.STDOUT,
        start_new_session=True)

    def worker_tail():
        with open(worker_log, errors="replace") as f:
            return " ".join(f.read().splitlines()[-5:])[-600:]

    try:
        sender = make_app()
        task = sender.signature("celery_bench.run_true")
        # Warm-up: the queue exists, the worker is consuming, and every connection is open before the clock starts.
        try:
            task.apply_async()
        except Exception as e:  # the broker refused or could not be reached: say why, no figure
            result(n, error=f"cannot send to SQS at {endpoint}: {type(e).__name__}: {e}", **versions)
            return 0
        if not await_bytes(fifo_fd, 1, time.monotonic() + WORKER_READY_TIMEOUT_S, worker):
            result(n, error=f"the worker did not run a warm-up task within {WORKER_READY_TIMEOUT_S} s: {worker_tail()}",
                   **versions)
            return 0
        log(f"celery {versions['version']} (kombu {versions['kombu']}) worker up: pool={pool} "
            f"concurrency={concurrency}, queue {queue} on {endpoint}")
        failures = []

        def submit_share(k):
            """Sends tasks k, k + submitters, ... over a connection of its own (kombu channels are not shared)."""
            try:
                with sender.producer_pool.acquire(block=True) as producer:
                    for _ in range(k, n, submitters):
                        task.apply_async(producer=producer)
            except Exception as e:
                failures.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=submit_share, args=(k,)) for k in range(submitters)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        submitted = time.perf_counter()
        if failures:
            result(n, error=f"sending failed: {failures[0]}", **versions)
            return 0
        if not await_bytes(fifo_fd, n, time.monotonic() + RUN_TIMEOUT_S, worker):
            result(n, error=f"not all tasks completed within {RUN_TIMEOUT_S} s: {worker_tail()}", **versions)
            return 0
        seconds = time.perf_counter() - start
        result(n, seconds=round(seconds, 3), tasks_per_s=round(n / seconds, 1), **versions,
               submit_seconds=round(submitted - start, 3), submitters=submitters, pool=pool, concurrency=concurrency)
        return 0
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        except ProcessLookupError:
            pass
        os.close(fifo_fd)
        try:
            sqs.delete_queue(QueueUrl=queue_url)
        except Exception as e:
            log(f"could not delete queue {queue}: {e}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # still exactly one JSON line, saying why
        result(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0,
               error=f"{type(e).__name__}: {e}")
        sys.exit(0)
