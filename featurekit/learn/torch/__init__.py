"""Torch models trained on the task: the training kit (:mod:`.training`), sequence inputs
(:mod:`.inputs`), sequence encoders (:mod:`.encoders`), the sequence head
(:class:`~.sequence.SequenceClassifier`) and the end-to-end CNN (:class:`~.e2e.E2EClassifier`).
Importing this package's modules imports torch."""
