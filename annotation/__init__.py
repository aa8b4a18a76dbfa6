"""Label Studio adapter, vote sync, quality control and vote aggregation."""
