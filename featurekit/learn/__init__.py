"""Learning from features, fold by fold: targets (:mod:`.targets`), splits drawn from training
rows only (:mod:`.splits`), fitting any head the same way (:mod:`.fitting`), choices by inner
cross-validation (:mod:`.selection`, :mod:`.tuning`), the tabular heads (:mod:`.heads`) and the
torch models (:mod:`.torch`: the sequence head and the end-to-end CNN)."""
