"""The recipe's fingerprint: every registered method trained once (seed 0) on the profile's teaching data, with the
SHA-256 of its trained weights, its clean AUROC and (``--attack``) its PGD AUROC, as JSON. Two versions of radlib
that claim to compute the same thing (a refactor) must print the same fingerprint on the same machine.

    python benchmarks/fingerprint.py --profile cpu --out fp.json        # then diff two versions' files

Run it from each checkout (``PYTHONPATH=<checkout>``), one after the other on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    ap.add_argument("--attack", action="store_true", help="also PGD at the profile's eps and steps")
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args(argv)


    from radlib.methods import METHODS
    from radlib.pipeline import default_attacks, load_data, run_method
    from radlib.profiles import get_profile

    profile = get_profile(args.profile)
    ds = load_data(*profile.dataset, None, profile, seed=0)
    attacks = default_attacks(profile, ds.image_size) if args.attack else []
    out = {}
    for method in args.methods or list(METHODS):
        t0 = time.perf_counter()
        r = run_method(method, ds, profile, device="cpu", seed=0, attacks=attacks, progress=False)
        weights = b"".join(v.detach().contiguous().float().cpu().numpy().tobytes()
                           for v in r.train.model.state_dict().values())
        out[method] = {"weights_sha256": hashlib.sha256(weights).hexdigest()[:16],
                       "clean": round(r.eval.clean_auroc, 4),
                       "attacked": round(r.eval.robust_auroc, 4) if attacks else None,
                       "seconds": round(time.perf_counter() - t0, 1)}
        print(method, json.dumps(out[method]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
