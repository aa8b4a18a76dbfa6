"""Library stages of the dataset build: plain functions over typed records, no orchestration."""
