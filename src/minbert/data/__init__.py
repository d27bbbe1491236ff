"""Files -> examples -> batches: readers, label vocabularies, batching."""
