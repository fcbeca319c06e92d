"""ketabayes.data."""
