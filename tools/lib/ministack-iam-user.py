"""Creates an IAM user with an access key in ministack, signing as ministack's root key, and prints the user's key.

Usage: ministack-iam-user.py ENDPOINT USER POLICY_JSON_FILE
The root key is ministack's own AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, passed in this script's environment as
MINISTACK_ROOT_ACCESS_KEY_ID / MINISTACK_ROOT_SECRET_ACCESS_KEY. Prints "ACCESS_KEY_ID SECRET_ACCESS_KEY" on stdout.
"""
import os
import sys

import boto3

endpoint, user, policy_file = sys.argv[1:4]
iam = boto3.client(
    "iam",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=os.environ["MINISTACK_ROOT_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["MINISTACK_ROOT_SECRET_ACCESS_KEY"],
)
iam.create_user(UserName=user)
with open(policy_file) as f:
    iam.put_user_policy(UserName=user, PolicyName=f"{user}-sqs", PolicyDocument=f.read())
key = iam.create_access_key(UserName=user)["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
