"""The collapse indicators' sampling step alone: one bundle of output batches, timed.

    .venv/bin/python -m benchmarks.indicator_sample [--rows 100000] [--batch-rows 100]

Small read batches (`read_batch_rows: 100`) make the sampler take thousands of small batches per
bundle; a probe found its time growing faster than the rows there (see benchmarks/HISTORY.md).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow as pa

from hybridmix.transforms.indicators import _SampleCandidatesFn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=100)
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args(argv)
    per = args.batch_rows
    # Texts of 1.5-1.8 KB, as answers are: the sample's byte bound and its row bound both come near.
    texts = pa.array(["word " * (300 + i % 50) for i in range(per)])
    batches = [pa.record_batch({"id": pa.array([f"r{b}-{i}" for i in range(per)]), "text": texts,
                                "tokens": pa.array(np.full(per, 300, np.int32)), "origin": pa.array(["human"] * per),
                                "source": pa.array(["h"] * per)}) for b in range(args.rows // per)]
    fn = _SampleCandidatesFn(0, args.sample, 64 * 50_000)
    started = time.perf_counter()
    fn.start_bundle()
    for batch in batches:
        fn.process(batch)
    sampled = [w.value[1].num_rows for w in fn.finish_bundle()]
    print(json.dumps({"rows": args.rows, "batch_rows": per, "seconds": round(time.perf_counter() - started, 2),
                      "sampled_rows_per_group": sampled}))


if __name__ == "__main__":
    main()
