"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

import pytest

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "1963d0ff3ea933b2d9beb7f0f324678b3057931fd980ceab867fba08e6cc0816",
    "data/train-00001-of-00002.parquet": "76ed8eca14e961d36cacf3ecf1c6a41fa19371ab2632b719f6d4afac459cb41b",
    "data/validation-00000-of-00001.parquet": "e6c0a64ebd957fe2509aa374b9ceb4873e7fd3597426d4c20b62c2dd097c3689",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "4dabcc47fa3408a1190fc6ee7ba1b761e41ebd2dcdad521e6ca94617c1f69c0e",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "d6a80eb4dc83fc83188d9f0c032f2e58de97eefba863e20e6badc46c73630635",
    "index/part-00000-of-00003.parquet": "4832c303c503476f381b358e89d9e7f3225af254d71a2f2140144a1c5166c093",
    "index/part-00001-of-00003.parquet": "eb7705ee37c2d61796e1eb4358a4b92e2ecc383596d04120130829175cb19ed2",
    "index/part-00002-of-00003.parquet": "088c119cf3f32b834300d56bcf495ea323cfebc03d59749d260bdbc7b8d54bcd",
}


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger", "index"):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as fh:
                found[f"{folder}/{name}"] = hashlib.sha256(fh.read()).hexdigest()
    return found


# The compiled kernels run on threads over runs of texts; the output must not depend on how many.
@pytest.mark.parametrize("threads", [[], ["--kernel-threads", "1"], ["--kernel-threads", "3"]],
                         ids=["default", "one-thread", "three-threads"])
def test_demo_output_files_are_byte_identical_to_the_recorded_ones(tmp_path, threads):
    out = str(tmp_path / "demo")
    # A fixed run id: the digests then depend on the code, the config and the sample data only.
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--run-id", "golden",
                 *threads]) == 0
    assert _digests(out) == DEMO_FILES
