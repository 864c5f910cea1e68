"""Parquet feature stores: the layout (:mod:`.layout`), reading (:class:`~.reader.FeatureStore`),
writing (:class:`~.writer.BranchWriter`), what a store holds of one clip (:mod:`.records`) and
frame sequences read in batches (:mod:`.sequences`).
"""
