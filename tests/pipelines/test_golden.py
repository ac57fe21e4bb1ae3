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
    "data/train-00000-of-00002.parquet": "e823ac383b7b41bd544407cd5e2fd8851a198ba653495d5198720d646caccd77",
    "data/train-00001-of-00002.parquet": "65e5d02c40284343b84a8ffd634793e72d001d2a4d62f856c36d541df37a0703",
    "data/validation-00000-of-00001.parquet": "4f3b30ed57fe79922a48623d5184697d98474fced8be076ee8b8d286b887775f",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "616951915fe4941eb81fdeb25c25bad93278c97d1a96f83d4178c81983c4ae80",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "84d66c4e5ee23208c6b37dfcc8c0dc7ca9081c1824084560dd59ec831ac5868c",
    "index/part-00000-of-00003.parquet": "4b6ec6c09dba96bf727c881e27b145eb37ce9d2001a98ea0d544118ae21f338d",
    "index/part-00001-of-00003.parquet": "887d7f2398d98fc6ad19ef7536dac00fb5003f31d4806ac4b32f17d7d3afc8a1",
    "index/part-00002-of-00003.parquet": "7dba1570b14f3d4c640638b120631d86f394f24881e786e0817933e882d92609",
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
