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
    "data/train-00000-of-00002.parquet": "91d3715845f453fc74913e08427307423178083c8df2e0aa55b0a666e8067931",
    "data/train-00001-of-00002.parquet": "55293bf2d5b7ce86bbf3a55daf25f8f9e8732b02e69cb585af972cce456e7b0e",
    "data/validation-00000-of-00001.parquet": "cb791feaaa62e73d19ea2f0d9696f07e4068d74723043445f0abf2fe3e56f1ae",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "bd70e0ce1c60c592622aef0c4d22d2696e7c328e4aaad139c5aa25e58e3d8d8a",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "ledger/part-00000-of-00001.parquet": "4e7104a38ed65cc143ad814683edb11424a3d73e6c05c45500fdd5eb5ad32927",
    "index/part-00000-of-00003.parquet": "79922ebc58cf8cfe7f154189ddba8dd0e673c7b7798fa01e75fc5fdad8343cd2",
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
