"""Names that several layers share, each defined once: store branches, streams, heads, datasets.

Words with one meaning each:

*store branch*
    a folder of a feature store (``handcrafted``, ``neural.<model>``, ``logmel``,
    ``sets.<name>``), filled by one computer;
*feature group*
    what the benchmark ablates: a descriptor family, a neural branch, ``e2e``;
*stream*
    a frame sequence that the sequence heads read (``pitch``, ``neural.<model>``, ``e2e``);
*member*
    one fitted head.
"""

from __future__ import annotations

#: Store branch of the handcrafted descriptor families (and of their frames).
HANDCRAFTED_BRANCH = "handcrafted"
#: Prefix of a pretrained model's store branch and feature group: ``neural.<model>``.
NEURAL_PREFIX = "neural."
#: Store branch of the log-mel frames the end-to-end stream learns from.
LOGMEL_BRANCH = "logmel"
#: The end-to-end stream: a feature group with no clip-level columns whose only head is a CNN
#: trained from scratch on the ``logmel`` frames (:mod:`featurekit.learn.torch.e2e`).
E2E_BRANCH = "e2e"
#: The head of the ``e2e`` feature group.
E2E_HEAD = "cnn"
#: Heads that learn from frame sequences rather than clip-level features.
SEQUENCE_HEAD_NAMES = ("seq",)
#: Heads that fit a torch network (on CUDA when there is one): the sequence heads, the e2e CNN.
TORCH_HEAD_NAMES = (*SEQUENCE_HEAD_NAMES, E2E_HEAD)
#: Evaluation protocols: every fold the test set once, or one official train -> validation ->
#: eval split (a dataset's ``protocol``; the benchmark's plan follows it).
LEAVE_ONE_FOLD_OUT, TRAIN_VAL_EVAL = "leave-one-fold-out", "train-val-eval"
#: The multi-label dataset with an official train / validation / eval split.
FSD50K = "fsd50k"
#: Datasets that load the user's own audio rather than an official release.
GENERIC_ADAPTERS = ("folder", "csv")


#: Prefixes of the model names that open a door rather than name a registered model:
#: ``hear:MODULE[:WEIGHTS]`` (a HEAR 2021 module), ``hf:ID_OR_DIR[@layer=K]`` (Hugging Face).
HEAR_DOOR, HF_DOOR = "hear:", "hf:"


def is_door(model: str) -> bool:
    """Whether ``model`` names a HEAR module or a Hugging Face model (``hear:``, ``hf:``)."""
    return model.startswith((HEAR_DOOR, HF_DOOR))


def model_store_name(model: str) -> str:
    """The name a model's store branch and columns carry: ``model`` itself, except for a door.

    ``hear:MODULE[:WEIGHTS]`` -> ``hear-MODULE`` with ``.`` as ``-`` (the weights file is in
    the branch's configuration, not its name); ``hf:ID_OR_DIR[@layer=K]`` -> ``hf-`` and the
    hub id (``org/name`` -> ``org-name``), or a directory's last component when it is a path
    (starting with ``/``, ``.`` or ``~``), with ``-layerK`` when a layer is named. Characters
    other than letters, digits, ``_`` and ``-`` become ``-``.
    """
    if model.startswith(HEAR_DOOR):
        return _plain("hear-" + model[len(HEAR_DOOR):].partition(":")[0])
    if model.startswith(HF_DOOR):
        source, _, layer = model[len(HF_DOOR):].partition("@layer=")
        if source.startswith(("/", ".", "~")):
            source = source.rstrip("/").rpartition("/")[2]
        return _plain(f"hf-{source}" + (f"-layer{layer}" if layer else ""))
    return model


def _plain(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "-" for c in name)


def neural_branch(model: str) -> str:
    """Store branch (and feature group) of a pretrained model's embeddings (a door's under
    :func:`model_store_name`)."""
    return f"{NEURAL_PREFIX}{model_store_name(model)}"


def is_neural(group: str) -> bool:
    """Whether a feature group or stream is a neural one (a pretrained model's, or ``e2e``)."""
    return group.startswith(NEURAL_PREFIX) or group == E2E_BRANCH


def indexed_names(prefix: str, count: int) -> list[str]:
    """``prefix_000`` ... ``prefix_<count - 1>``."""
    # At least three digits, more when needed, so that names sort in index order.
    width = max(3, len(str(count - 1)))
    return [f"{prefix}_{i:0{width}d}" for i in range(count)]


def embedding_names(model: str, dim: int, *, tags: int = 0) -> list[str]:
    """Column names ``neural.<model>.emb_000`` … then ``neural.<model>.tag_000`` … (tags are
    AudioSet class indices, see :func:`featurekit.neural.audioset_labels`)."""
    branch = neural_branch(model)
    return indexed_names(f"{branch}.emb", dim) + indexed_names(f"{branch}.tag", tags)
