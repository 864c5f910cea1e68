"""Train one benchmark system once, save it, and classify new audio with it.

Modules: :mod:`.classifier` (:class:`~.classifier.AudioClassifier`, the fitted system over
audio), :mod:`.systems` (the system a model fits), :mod:`.clip_features` (features of new
clips), :mod:`.artifact` (the file format), :mod:`.load` (:func:`~.load.load_model`) and
:mod:`.train` (``featurekit train``).
"""
