"""boto3's side of tools/bench: the same send -> receive -> delete loop as touchstone-bench, same queue settings.

Usage: bench_boto3.py ROUNDS. Endpoint from TOUCHSTONE_SQS_ENDPOINT, key from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
Prints "rounds=N total_ms=T per_round_ms=P".
"""
import os
import sys
import time
import uuid

import boto3

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
sqs = boto3.client("sqs", endpoint_url=os.environ["TOUCHSTONE_SQS_ENDPOINT"],
                   region_name=os.environ.get("TOUCHSTONE_SQS_REGION", "us-east-1"))
url = sqs.create_queue(QueueName=f"bench-boto3-{uuid.uuid4().hex[:8]}.fifo",
                       Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
body = "x" * 256


def round_trip(i):
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=f"d{i}")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                   MessageSystemAttributeNames=["All"]).get("Messages", [])
    if not messages:
        raise SystemExit(f"round {i} got nothing")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])


for i in range(10):
    round_trip(-1 - i)
start = time.perf_counter()
for i in range(rounds):
    round_trip(i)
total_ms = (time.perf_counter() - start) * 1000
sqs.delete_queue(QueueUrl=url)
print(f"rounds={rounds} total_ms={total_ms:.1f} per_round_ms={total_ms / rounds:.3f}")
