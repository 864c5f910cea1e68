"""Signal analysis shared by every descriptor family: filter banks (:mod:`.filterbanks`), the
probabilistic-YIN pitch track (:mod:`.pyin`) and :class:`~.analysis.Analysis`, the per-clip
intermediates (one STFT, mel, MFCC, chroma, envelopes, pitch) computed lazily once."""
