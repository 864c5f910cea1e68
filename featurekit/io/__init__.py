"""Bytes in and out: audio decoding (:mod:`.audio`), checksum-verified downloads and archive
extraction (:mod:`.download`), split ZIP archives read in place (:mod:`.splitzip`)."""
