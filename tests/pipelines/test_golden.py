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
    "data/train-00000-of-00002.parquet": "9d06e71a987334841768448b707e429339e905aa26a323103b3934921926c9d5",
    "data/train-00001-of-00002.parquet": "c77fa66008a3d28fc230d44785b50b574c0299759f15e1d5b23350d199dee8e7",
    "data/validation-00000-of-00001.parquet": "1f786f611e33b2dcbd20fcfe17f88c87089156382b40dbc5c5daa52f99bb9035",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "44ff4fb2fbafd1dec45688936078a567a668cc0b97e96bae7399f2a33bbaa885",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "45ae339ebb06066aa9b1890145cdea95c48a48fdd99d5fb451c350611c5e79bb",
    "index/part-00000-of-00003.parquet": "8b91da611c74bf93ada0369b363f0117314b69a18ce0217919f58fe05f0f4671",
    "index/part-00001-of-00003.parquet": "1270fafb03d5c625087098118e3c9b2f30d6d7c0e653aa479da9ce5c96714565",
    "index/part-00002-of-00003.parquet": "e73aa6dac93ad91e89765e091816278df9f4e83bccccf8da3f872d8cc7dbd048",
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
