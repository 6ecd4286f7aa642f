"""boto3's baseline for tools/bench row 5: the raw request/response path over two SQS FIFO queues.

Usage: .venv-ministack/bin/python sqs_roundtrip.py ROUNDS
Endpoint from TOUCHSTONE_SQS_ENDPOINT; key from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else
TOUCHSTONE_SQS_ACCESS_KEY_ID/TOUCHSTONE_SQS_SECRET_ACCESS_KEY (what tools/lib/sqs-servers.sh exports); region from
TOUCHSTONE_SQS_REGION (default us-east-1).

Two FIFO queues, req and resp, and two threads with a boto3 client each:
  agent:   blocks in ReceiveMessage(req, WaitTimeSeconds=20); on a request it deletes it and sends a response to resp.
  backend: per round, starts the clock, sends a request to req, blocks in ReceiveMessage(resp, WaitTimeSeconds=20),
           and stops the clock when the response arrives; then deletes it (outside the clock, before the next round).
So one round is: send -> a blocked long poll returns -> delete -> send -> a blocked long poll returns, which is the
path of Touchstone's submit -> task.started over SQS. 10 warm-up rounds are not counted.

Prints exactly one JSON line on stdout:
  {"peer": "boto3-roundtrip", "rounds": N, "p50_ms": .., "p99_ms": .., "mean_ms": .., "version": boto3's}
or {"peer": "boto3-roundtrip", "rounds": N, "error": "why"}. Exits 0 either way (2 on a usage error).
p50/p99 are nearest-rank percentiles of the N round times.
"""
import json
import math
import os
import queue
import statistics
import sys
import threading
import time
import uuid

WAIT_S = 20  # SQS's longest long poll
WARM_UP_ROUNDS = 10
BODY = "x" * 256  # the size of bench_boto3.py's body


def nearest_rank(sorted_values, fraction):
    """The nearest-rank percentile: the smallest value with at least fraction of the values at or below it."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def result(rounds, **fields):
    print(json.dumps({"peer": "boto3-roundtrip", "rounds": rounds, **fields}), flush=True)


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        print("usage: sqs_roundtrip.py ROUNDS (ROUNDS >= 1)", file=sys.stderr)
        return 2
    rounds = int(sys.argv[1])
    try:
        import boto3
    except ImportError as e:
        result(rounds, error=f"boto3 is not importable (run with .venv-ministack/bin/python): {e}")
        return 0
    endpoint = os.environ.get("TOUCHSTONE_SQS_ENDPOINT")
    key = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("TOUCHSTONE_SQS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or os.environ.get("TOUCHSTONE_SQS_SECRET_ACCESS_KEY")
    if not endpoint or not key or not secret:
        result(rounds, error="set TOUCHSTONE_SQS_ENDPOINT and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        return 0

    def client():
        # read_timeout stated above the 20 s long poll (botocore's default is 60 s); no retries: a failure is
        # reported, not hidden behind a second attempt that would count in the round's time.
        from botocore.config import Config
        return boto3.client("sqs", endpoint_url=endpoint, region_name=os.environ.get("TOUCHSTONE_SQS_REGION", "us-east-1"),
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(read_timeout=WAIT_S + 10, retries={"max_attempts": 0}))

    backend, agent = client(), client()
    suffix = uuid.uuid4().hex[:8]
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    try:
        req = backend.create_queue(QueueName=f"bench-rt-req-{suffix}.fifo", Attributes=fifo)["QueueUrl"]
        resp = backend.create_queue(QueueName=f"bench-rt-resp-{suffix}.fifo", Attributes=fifo)["QueueUrl"]
    except Exception as e:
        result(rounds, error=f"cannot create FIFO queues at {endpoint}: {type(e).__name__}: {e}")
        return 0

    total = WARM_UP_ROUNDS + rounds
    agent_errors = queue.Queue()

    def run_agent():
        try:
            served = 0
            while served < total:
                messages = agent.receive_message(QueueUrl=req, MaxNumberOfMessages=1, WaitTimeSeconds=WAIT_S
                                                 ).get("Messages", [])
                for message in messages:
                    agent.delete_message(QueueUrl=req, ReceiptHandle=message["ReceiptHandle"])
                    agent.send_message(QueueUrl=resp, MessageBody=message["Body"], MessageGroupId="g",
                                       MessageDeduplicationId=f"resp-{served}")
                    served += 1
        except Exception as e:
            agent_errors.put(f"{type(e).__name__}: {e}")

    agent_thread = threading.Thread(target=run_agent, daemon=True)
    agent_thread.start()
    times_ms = []
    try:
        for i in range(total):
            start = time.perf_counter()
            backend.send_message(QueueUrl=req, MessageBody=BODY, MessageGroupId="g", MessageDeduplicationId=f"req-{i}")
            messages = backend.receive_message(QueueUrl=resp, MaxNumberOfMessages=1, WaitTimeSeconds=WAIT_S
                                               ).get("Messages", [])
            elapsed_ms = (time.perf_counter() - start) * 1000
            if not messages:
                why = agent_errors.get() if not agent_errors.empty() else f"no response within {WAIT_S} s"
                result(rounds, error=f"round {i}: {why}")
                return 0
            backend.delete_message(QueueUrl=resp, ReceiptHandle=messages[0]["ReceiptHandle"])
            if i >= WARM_UP_ROUNDS:
                times_ms.append(elapsed_ms)
    except Exception as e:
        result(rounds, error=f"{type(e).__name__}: {e}")
        return 0
    finally:
        for url in (req, resp):
            try:
                backend.delete_queue(QueueUrl=url)
            except Exception as e:
                print(f"sqs_roundtrip: could not delete {url}: {e}", file=sys.stderr)
    ordered = sorted(times_ms)
    from importlib.metadata import version
    result(rounds, p50_ms=round(nearest_rank(ordered, 0.50), 3), p99_ms=round(nearest_rank(ordered, 0.99), 3),
           mean_ms=round(statistics.fmean(ordered), 3), version=version("boto3"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
