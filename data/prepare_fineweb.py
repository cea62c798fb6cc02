#!/usr/bin/env python3
"""FineWeb (or FineWeb-Edu) -> llm.c token shards, with llm.dion's own tokenizer.

Streams the documents of a FineWeb sample from the Hugging Face hub with the
`datasets` library and pipes them as JSON lines into build/tokenize, which writes
shards exactly as llm.c's dev/data/fineweb.py does: 100M tokens a shard, the
first shard val, <|endoftext|> before every document, GPT-2 ids (identical to
tiktoken's), names <prefix>_val_000000.bin, <prefix>_train_000001.bin, ...

    /usr/bin/python3 data/prepare_fineweb.py --version 10B           # sample-10BT, ~100 shards
    /usr/bin/python3 data/prepare_fineweb.py --version 100B --type edu
    /usr/bin/python3 data/prepare_fineweb.py --jsonl docs.jsonl --out /tmp/x   # local, no network

Needs `pip install datasets` and network access only for the download; the
tokenizing and shard writing are build/tokenize's.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATASETS = {"classic": ("HuggingFaceFW/fineweb", "fineweb"), "edu": ("HuggingFaceFW/fineweb-edu", "edu_fineweb")}


def hub_documents(kind, version):
    try:
        from datasets import load_dataset
    except ImportError:
        sys.exit("prepare_fineweb: the download needs the `datasets` library (pip install datasets); "
                 "use --jsonl FILE to tokenize local JSON lines instead")
    repo, _ = DATASETS[kind]
    for row in load_dataset(repo, name=f"sample-{version}T", split="train", streaming=True):
        yield row["text"]


def local_documents(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)["text"]
                except (ValueError, KeyError, TypeError) as e:
                    sys.exit(f"prepare_fineweb: {path} line {number}: no JSON object with a \"text\" field ({e})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--type", choices=sorted(DATASETS), default="classic", help="FineWeb or FineWeb-Edu")
    parser.add_argument("--version", choices=["10B", "100B"], default="10B", help="sample-10BT or sample-100BT")
    parser.add_argument("--jsonl", help="tokenize this local JSON-lines file instead of downloading")
    parser.add_argument("--out", help="output folder (default data/fineweb10B, data/edu_fineweb100B, ...)")
    parser.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="tokenizer threads")
    args = parser.parse_args()

    _, prefix = DATASETS[args.type]
    out_dir = args.out or os.path.join(ROOT, "data", f"{prefix}{args.version}")
    tokenize = os.path.join(ROOT, "build", "tokenize")
    if not os.access(tokenize, os.X_OK):
        sys.exit(f"prepare_fineweb: {tokenize} is missing; run scripts/setup.sh first")
    documents = local_documents(args.jsonl) if args.jsonl else hub_documents(args.type, args.version)

    command = [tokenize, "--vocab-dir", os.path.join(ROOT, "data", "gpt2"), "--out", os.path.join(out_dir, prefix),
               "--shard-tokens", str(args.shard_tokens), "--threads", str(args.threads), "--format", "jsonl", "-"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    try:
        for text in documents:
            process.stdin.write((json.dumps({"text": text}) + "\n").encode("ascii"))
        process.stdin.close()
    except BrokenPipeError:
        pass  # tokenize stopped early and says why
    except BaseException:
        process.terminate()  # on SIGTERM tokenize removes its unfinished shards
        process.wait()
        raise
    sys.exit(process.wait())


if __name__ == "__main__":
    main()
