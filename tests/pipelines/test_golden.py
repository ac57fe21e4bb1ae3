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
    "data/train-00000-of-00002.parquet": "7594c932dab98550eb8bcee2d6102d305407e2e716d6baabae08a841cf973a23",
    "data/train-00001-of-00002.parquet": "1b4ced15c4069be0bd9b90d5016563cf93d960feef6ab481b6578c39b78ff829",
    "data/validation-00000-of-00001.parquet": "00cd470482a81efc5049e6f900d696cec7c8d54f0b900d7968cf116838056be1",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "4c6caf84765ac159a96c8c2b7700a5f2f49c5ac6a3516fa153c1ad81ab9b84ed",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "84d66c4e5ee23208c6b37dfcc8c0dc7ca9081c1824084560dd59ec831ac5868c",
    "index/part-00000-of-00003.parquet": "48cefc1212764d25a68887010c3dee41e2f8d30a52f4b2957c9bf9d8dedf579e",
    "index/part-00001-of-00003.parquet": "cfeeea2fb116ce430073e9f81eb5d2d63f8ea4d34a9fa60816ac673596cf92fe",
    "index/part-00002-of-00003.parquet": "f46f3a77c8d9eb483312c460d0a4767b1c86dd9ae57ee2ddf1344977d1021267",
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
