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
    "data/train-00001-of-00002.parquet": "e244e43cad85f7554a415a03e6e884df1b2f9fb51d2c4702e660a25b44068e6f",
    "data/validation-00000-of-00001.parquet": "e6c0a64ebd957fe2509aa374b9ceb4873e7fd3597426d4c20b62c2dd097c3689",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "4dabcc47fa3408a1190fc6ee7ba1b761e41ebd2dcdad521e6ca94617c1f69c0e",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "6f8647f51b224edd2f5f7c74e4caaa1dfe2eb89e00a71056065424c2008a8b66",
    "index/part-00000-of-00003.parquet": "8bf58bee732857f10dc06100ef088bf7025a5d81995876192f99b38fc4d436ed",
    "index/part-00001-of-00003.parquet": "d9120cdb0596977be2c7a6276dc3bba60a88d0a1c468d5a8f730ad3f065cee34",
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
