"""Build the multi-label set of the README from ESC-10: clip pairs mixed, FSD50K layout.

Every ESC-10 clip (400, 10 classes) is the first clip of one item; a third of the items are
that clip alone (one label), the others mix it at equal loudness with a clip of another class
from the same split (two labels). Splits follow the official ESC-10 folds, which keep the
clips of one source recording together: folds 1-3 are ``train``, fold 4 ``val``, fold 5
``eval``. Items are 5 s, mono, 22,050 Hz, 16-bit WAV, written as FSD50K's official layout, so
``featurekit benchmark --dataset fsd50k`` reads them unchanged (train -> val -> eval once).

    python benchmarks/make_multilabel_set.py --esc10 ../shared/data/esc10 --out esc10-mix
    FEATUREKIT_WEIGHTS_DIR=../shared/weights featurekit benchmark --dataset fsd50k \\
        --data-dir esc10-mix --store stores --jobs 2 --out benchmark-esc10-mix

Prints the clips and label counts of each split. Deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import warnings

from featurekit.datasets import load_dataset
from featurekit.datasets.mixtures import write_mixture_set

SPLIT_OF_FOLD = {1: "train", 2: "train", 3: "train", 4: "val", 5: "eval"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--esc10", required=True, help="ESC-10 directory (../shared/data/esc10)")
    parser.add_argument("--out", required=True, help="folder to write the FSD50K layout into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single-share", type=float, default=1 / 3,
                        help="share of items that are one clip alone (default 1/3)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shared copy's notes on its OGG files
        source = load_dataset("esc10", args.esc10)
    table = write_mixture_set(source, args.out, SPLIT_OF_FOLD, single_share=args.single_share,
                              seed=args.seed)
    table["n_labels"] = table["labels"].str.count(",") + 1
    summary = table.groupby("split", sort=False)["n_labels"].agg(
        clips="size", two_labels=lambda n: int((n == 2).sum()))
    print(summary.to_string())


if __name__ == "__main__":
    main()
