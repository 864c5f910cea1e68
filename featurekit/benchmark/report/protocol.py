"""The report's opening sections: the protocol (folds, clips, grouping, the ablation mode) and
the budget every system shares (heads, repeats, inner splits, early stopping, head settings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from featurekit.benchmark.report.common import grouping


def folds_text(folds: Sequence[int]) -> str:
    """``1, 2, 3``."""
    return ", ".join(str(f) for f in folds)


def run_heads(results: Mapping[str, Any]) -> list[str]:
    """The heads of the run, in the order of its systems (fusions without one left out)."""
    return list(dict.fromkeys(system["head"] for system in results["systems"]
                              if system["head"] is not None))


def protocol_section(results: Mapping[str, Any]) -> list[str]:
    """The title, the evaluation protocol and whether every official fold is there."""
    folds = results["folds"]
    protocol = (f"**Protocol.** {results['protocol']} over folds {folds_text(folds)} "
                f"({results.get('n_clips', '?')} clips, {len(results.get('classes', []))} "
                f"classes; clips per fold: "
                + ", ".join(f"{k}: {v}" for k, v in results.get("clips_per_fold", {}).items())
                + "). " + ("Official split: heads are fitted on the train clips (fold 1) and "
                           "predict the validation clips (fold 2), on which fusion weights, "
                           "stackers and every selection are learned; the same fits then "
                           "predict the eval clips (fold 3), which the systems score once "
                           "(no refit on train + validation); intervals resample the eval "
                           "clips."
                           if results["protocol"] == "train-val-eval" else
                           "Each fold is the test set once; scaling, imputation, early "
                           "stopping, hyper-parameters, fusion weights and stackers are fitted "
                           "on the training folds only, second-level learners on inner "
                           "out-of-fold predictions."))
    # A comparison of feature sets evaluates subsets of its own, not an ablation mode's.
    ablation = "" if results.get("feature_sets") else " " + _ablation_text(results)
    lines = [f"# featurekit benchmark: {results['dataset']}", "", protocol + ablation, ""]
    missing = results.get("missing_folds") or []
    if missing:
        return [*lines,
                f"**Missing folds.** The dataset's official folds are "
                f"{folds_text(results['expected_folds'])}; folds {folds_text(missing)} are "
                f"not in this copy, so the figures cover folds {folds_text(folds)} only and "
                "are not comparable with full-dataset results.", ""]
    return [*lines, "All official folds are present.", ""]


#: What each ablation mode evaluates (:func:`featurekit.benchmark.ablation.ablation_subsets`).
ABLATION_TEXT = {
    "families": "each branch alone, the handcrafted families together, everything, all but "
                "each branch and the handcrafted families with each neural branch",
    "full": "each branch alone, every pair of branches, the handcrafted families together, "
            "everything, all but each branch and the handcrafted families with each neural "
            "branch",
    "none": "only what the primary and branch comparisons need: everything, each neural "
            "branch alone (each branch, without a neural one), the handcrafted families "
            "together and with each neural branch",
}


def _ablation_text(results: Mapping[str, Any]) -> str:
    """The ablation mode of the run and the branch subsets it evaluated (``families`` for
    results written before the option)."""
    mode = results.get("config", {}).get("ablation", "families")
    return f"Ablation `{mode}`: {ABLATION_TEXT[mode]}."


def _inner_splits_text(results: Mapping[str, Any]) -> str:
    """The inner splits as they were drawn: the official one, or by the run's groups."""
    if results["protocol"] == "train-val-eval":
        return "one inner split, the official one (train clips fit, validation clips predicted)"
    count = results.get("config", {}).get("inner_splits")
    return {"recordings": f"{count} inner out-of-fold splits of the training folds that keep "
                          "each source recording whole",
            "folds": f"{count} inner out-of-fold splits of the training folds that keep each "
                     "fold whole (source recordings unknown)",
            "clips": f"{count} inner out-of-fold splits of the training clips (source "
                     "recordings unknown)"}[grouping(results)]


#: How an early-stopping split kind of results.json's ``validation_splits`` reads.
_HELD_OUT = {"recordings": "whole source recordings", "folds": "whole folds",
             "clips": "clips", "none": "no validation rows"}


def validation_text(counts: Mapping[str, Mapping[str, int]]) -> str:
    """Per head, the fits of each early-stopping split kind: ``mlp 12 whole source
    recordings, 3 clips``."""
    return "; ".join(f"`{head}` " + ", ".join(f"{n} {_HELD_OUT.get(kind, kind)}"
                                               for kind, n in kinds.items() if n)
                     for head, kinds in counts.items())


def _settings_text(record: Mapping[str, Any], dataset: str) -> str:
    """Where each head's settings were chosen, and whether that data is this dataset's."""
    where = "; ".join(
        f"`{head}` " + (", ".join(facts["chosen_on"]) if facts["chosen_on"] else "no data")
        + (" (" + ", ".join(f"{key}={value}" for key, value in facts["params"].items()) + ")"
           if facts["params"] else "")
        for head, facts in record["heads"].items())
    verdict = {True: f"none of them on {dataset}'s clips: the figures are independent of the "
                     "choice.",
               False: f"**not independent**: the settings of {', '.join(record['overlapping'])} "
                      f"were chosen on {dataset}'s clips, so its figures favour them.",
               None: f"whether {dataset}'s clips took part cannot be told from its name."}
    return (f"**Head settings, and the data that chose them.** {where}; "
            f"{verdict[record['disjoint']]} Evidence: {record['evidence']}.")


def budget_section(results: Mapping[str, Any]) -> list[str]:
    """What every system was given (heads, repeats, seeds, inner splits), and config hashes."""
    lines = []
    config = results.get("config", {})
    if config:
        lines += [f"**Budget (identical for every system).** Heads: "
                  f"{', '.join(run_heads(results))}; "
                  f"{config.get('repeats', 1)} repeat(s) of every fit (other seeds and inner "
                  f"splits each time), {config.get('n_seeds')} seed(s) per seeded head within "
                  "a repeat, probabilities averaged (single branches and every branch inside "
                  f"a fusion alike); {_inner_splits_text(results)}; hyper-parameter "
                  f"search {'on' if config.get('tune') else 'off'}; seed {config.get('seed')}.",
                  ""]
    if results.get("validation_splits"):
        lines += ["**Early stopping.** What every fit (members and their inner out-of-fold "
                  "twins, which stop early on the kind of split their member used) held out "
                  "as validation rows: " + validation_text(results["validation_splits"])
                  + ".", ""]
    if results.get("head_settings"):
        lines += [_settings_text(results["head_settings"], results["dataset"]), ""]
    hashes = results.get("config_hashes", {})
    if hashes:
        lines += ["**Config hashes.** " + ", ".join(f"{k}: `{v}`" for k, v in hashes.items()),
                  ""]
    return lines
