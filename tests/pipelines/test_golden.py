"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "12d6f0c4b56b6ed50ad6427f68b667138ce90e782f5ca4d5270cf88f7abba01a",
    "data/train-00001-of-00002.parquet": "0a67d338d63137c38ef81e654dc7656f5b4e8a19c3706f8ff0f3a3ef36050ba1",
    "data/validation-00000-of-00001.parquet": "143acc6b7997d127c968d61db39ba577a51d670dab01c93da11e5d13b3380f1b",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "filtered/part-00000-of-00001.parquet": "ce0df33b4d11d4a84b0af73944cf82c7962f9a172e0ea70fa6dba1a3b71ad8bc",
    "index/part-00000-of-00003.parquet": "86a3422cf6e8b41aeeaae1e3f4e9b5e444c8e85bf59438f1284049426210ab82",
    "index/part-00001-of-00003.parquet": "2b63166afcee7f567abb865d37ef06a619c8db1c1581c2e194e349bb7efdff35",
    "index/part-00002-of-00003.parquet": "774a88ba0324dba53fe6ebb629d54d463d6e48b2dce3ba721bdafa27a5c65d84",
    "ledger/part-00000-of-00001.parquet": "648fa3479983ca31dcbf379409b7650cf97596479c31da2919fc59f883aa2ce0",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
}


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger", "index"):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as fh:
                found[f"{folder}/{name}"] = hashlib.sha256(fh.read()).hexdigest()
    return found


def test_demo_output_files_are_byte_identical_to_the_recorded_ones(tmp_path):
    out = str(tmp_path / "demo")
    # A fixed run id: the digests then depend on the code, the config and the sample data only.
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--run-id", "golden"]) == 0
    assert _digests(out) == DEMO_FILES
